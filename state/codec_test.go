package state

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/flashreturn/flashreturn/internal/core"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// codecFields lists the fields the codec encodes. When core gains a field,
// this test fails: encode it (as a new version, see codec.go), then add it
// here.
var codecFields = map[reflect.Type][]string{
	reflect.TypeFor[core.User](): {"ID", "Stars", "Orders", "Requests", "OutstandingFen",
		"RecentRequests", "BadInspections", "MaxAt"},
	reflect.TypeFor[core.Order](): {"ID", "MerchantID", "Category", "City", "Size", "PaidFen",
		"SevenDay", "FreightInsurance", "PaidAt", "ShippedAt", "DeliveredAt"},
	reflect.TypeFor[core.Request](): {"ID", "OrderID", "Kind", "Reason", "At", "AmountFen", "Status",
		"Verdict", "Reasons", "MerchantRule", "MerchantRevision", "RefundTrigger", "RefundSent",
		"RefundAdvance", "RefundAt", "Pickup", "PickupSize", "Replace", "WindowStart", "WindowEnd",
		"PickupDone", "CompensationSent", "Tracked", "Inspection", "ClosedAt"},
}

func TestCodecCoversAllFields(t *testing.T) {
	for typ, known := range codecFields {
		var got []string
		for i := range typ.NumField() {
			got = append(got, typ.Field(i).Name)
		}
		for _, f := range got {
			if !slices.Contains(known, f) {
				t.Errorf("core.%s.%s is not in the state codec: add it as a new record version (see state/codec.go)", typ.Name(), f)
			}
		}
		for _, f := range known {
			if !slices.Contains(got, f) {
				t.Errorf("core.%s.%s was removed: the codec must still skip it in old records", typ.Name(), f)
			}
		}
	}
}

func roundTrip(t *testing.T, u *core.User) []byte {
	t.Helper()
	enc := appendUser(nil, u)
	got, err := decodeUser(enc)
	if err != nil {
		t.Fatalf("decode %x: %v", enc, err)
	}
	if !reflect.DeepEqual(got, u) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, u)
	}
	if b := encodedSizeBound(u); b < len(enc) {
		t.Fatalf("encodedSizeBound %d < encoded %d", b, len(enc))
	}
	return enc
}

func TestCodecRoundTrip(t *testing.T) {
	roundTrip(t, &core.User{})
	roundTrip(t, &core.User{ID: "x"})
	roundTrip(t, fullUser())
	roundTrip(t, typicalUser(7))
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	n := 5000
	if raceEnabled {
		n = 500
	}
	for range n {
		roundTrip(t, randomUser(r))
	}
}

func TestTimeCodec(t *testing.T) {
	f := func(base, ts int64, wantLen int) {
		t.Helper()
		enc := appendTime(nil, base, ts)
		d := decoder{s: string(enc)}
		if got := d.time(base); got != ts || d.err != nil || d.off != len(enc) {
			t.Errorf("time(base %d, t %d) = %d, err %v", base, ts, got, d.err)
		}
		if wantLen > 0 && len(enc) != wantLen {
			t.Errorf("time(base %d, t %d) takes %d bytes, want %d", base, ts, len(enc), wantLen)
		}
	}
	f(t0, 0, 1)
	f(t0, t0, 1)
	f(t0, t0-3*86400e9, 3) // three days before, whole seconds
	f(t0, t0-3*86400e9-123e6, 5)
	f(t0, t0+1, 0)
	f(t0, t0-1, 0)
	f(t0, math.MinInt64, 0)
	f(t0, math.MaxInt64, 0)
	f(math.MinInt64, math.MaxInt64, 0)
	f(math.MaxInt64, math.MinInt64, 0)
	f(0, math.MinInt64, 0)
	f(0, 1, 0)
	f(-1, math.MaxInt64, 0)
}

func TestDecodeRejects(t *testing.T) {
	good := appendUser(nil, fullUser())
	f := func(name string, rec []byte, want error) {
		t.Helper()
		u, err := decodeUser(rec)
		if err == nil {
			t.Errorf("%s: decoded %+v, want error", name, u)
			return
		}
		if want != nil && !errors.Is(err, want) {
			t.Errorf("%s: error %v, want %v", name, err, want)
		}
	}
	f("empty", nil, errShort)
	f("version 0", append([]byte{0}, good[1:]...), ErrUnsupportedVersion)
	f("future version", append([]byte{userVersion + 1}, good[1:]...), ErrUnsupportedVersion)
	f("trailing byte", append(slices.Clone(good), 0), nil)
	for n := 1; n < len(good); n++ {
		f("truncated", good[:n], nil)
	}
	bad := appendUser(nil, &core.User{Orders: []core.Order{{}}})
	// The order's flags byte follows 4 empty strings, size and paid.
	i := 1 + 1 + 3 + 1 + 4 + 1 + 1
	bad[i] = 0x80
	f("unknown flag", bad, nil)
	f("huge slice", []byte{userV1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, nil)
}

func TestCodecGolden(t *testing.T) {
	path := filepath.Join("testdata", "user_v1.golden")
	enc := appendUser(nil, fullUser())
	if *update {
		if err := os.WriteFile(path, []byte(hex.Dump(enc)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dump, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./state -run Golden -update to create it)", err)
	}
	golden := undump(t, dump)
	// Compatibility: this release reads version-1 records exactly.
	got, err := decodeUser(golden)
	if err != nil {
		t.Fatalf("decode golden: %v", err)
	}
	if !reflect.DeepEqual(got, fullUser()) {
		t.Fatalf("golden decodes to\n%+v\nwant\n%+v", got, fullUser())
	}
	// Stability: while userVersion is 1 the encoding must not change.
	if userVersion == userV1 && !bytes.Equal(enc, golden) {
		t.Fatalf("encoding changed without a version bump:\n got %x\nwant %x", enc, golden)
	}
}

// undump parses the output of hex.Dump.
func undump(t *testing.T, dump []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(dump, []byte("\n")) {
		if len(line) < 10 {
			continue
		}
		hexPart := line[10:min(len(line), 58)]
		b, err := hex.DecodeString(string(bytes.ReplaceAll(hexPart, []byte(" "), nil)))
		if err != nil {
			t.Fatalf("bad golden line %q: %v", line, err)
		}
		out = append(out, b...)
	}
	return out
}

func FuzzDecodeUser(f *testing.F) {
	f.Add(appendUser(nil, fullUser()))
	f.Add(appendUser(nil, typicalUser(1)))
	f.Add(appendUser(nil, &core.User{}))
	f.Add([]byte{userV1, 1, 'x', 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, rec []byte) {
		u, err := decodeUser(rec)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode to something that decodes the same.
		u2, err := decodeUser(appendUser(nil, u))
		if err != nil {
			t.Fatalf("re-encoded record fails: %v", err)
		}
		if !reflect.DeepEqual(u, u2) {
			t.Fatalf("re-encoding changed the user:\n%+v\n%+v", u, u2)
		}
	})
}

func FuzzDecodeOutbox(f *testing.F) {
	f.Add(appendOutbox(nil, []OutMsg{{Subject: "fr.out.refund.u1", MsgID: "r1:refund", Data: []byte(`{}`)}}))
	f.Fuzz(func(t *testing.T, rec []byte) {
		msgs, err := decodeOutbox(rec)
		if err != nil {
			return
		}
		// Varints need not be canonical; the messages must survive.
		again, err := decodeOutbox(appendOutbox(nil, msgs))
		if err != nil {
			t.Fatalf("re-encoded outbox fails: %v", err)
		}
		if len(again) != len(msgs) {
			t.Fatalf("outbox of %d messages re-decodes to %d", len(msgs), len(again))
		}
		for i := range msgs {
			if again[i].Subject != msgs[i].Subject || again[i].MsgID != msgs[i].MsgID || !bytes.Equal(again[i].Data, msgs[i].Data) {
				t.Fatalf("message %d changed: %+v vs %+v", i, again[i], msgs[i])
			}
		}
	})
}

func TestMetaOutboxCodec(t *testing.T) {
	c, k, err := decodeMeta(appendMeta(nil, math.MaxUint64, math.MinInt64))
	if err != nil || c != math.MaxUint64 || k != math.MinInt64 {
		t.Fatalf("meta round trip: %d %d %v", c, k, err)
	}
	if _, _, err := decodeMeta([]byte{2, 0, 0}); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("meta v2: %v", err)
	}
	msgs := []OutMsg{{"a", "b", []byte("c")}, {"", "", nil}}
	got, err := decodeOutbox(appendOutbox(nil, msgs))
	if err != nil || len(got) != 2 || got[0].Subject != "a" || string(got[0].Data) != "c" || len(got[1].Data) != 0 {
		t.Fatalf("outbox round trip: %+v %v", got, err)
	}
	if n := OutboxBytes(msgs); n < len(appendOutbox(nil, msgs))+len(sufOutbox) {
		t.Fatalf("OutboxBytes %d too small", n)
	}
}
