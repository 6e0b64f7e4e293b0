package faults

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseFaults(t *testing.T) {
	f := func(in string, want ...Fault) {
		t.Helper()
		got, err := ParseFaults(in)
		if err != nil {
			t.Fatalf("ParseFaults(%q): %v", in, err)
		}
		if len(want) == 0 {
			want = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("ParseFaults(%q) = %v, want %v", in, got, want)
		}
	}
	d, n := TargetDaemon, TargetNATS
	f("")
	f("   ")
	f("kill9@15s", Fault{d, FaultKill9, 15 * time.Second})
	f("kill9@15s,start@17s,sigterm@30s,start@31s", Fault{d, FaultKill9, 15 * time.Second}, Fault{d, FaultStart, 17 * time.Second},
		Fault{d, FaultSigterm, 30 * time.Second}, Fault{d, FaultStart, 31 * time.Second})
	f(" nats:kill9 @ 20s , nats:start@22s ", Fault{n, FaultKill9, 20 * time.Second}, Fault{n, FaultStart, 22 * time.Second})
	// Upper case, the sigkill alias, sub-second and compound offsets.
	f("SIGKILL@1.5s,Daemon:Start@1m30s,sigstop@250ms", Fault{d, FaultSigstop, 250 * time.Millisecond},
		Fault{d, FaultKill9, 1500 * time.Millisecond}, Fault{d, FaultStart, 90 * time.Second})
	// Sorted by offset; equal offsets keep their order (an immediate restart).
	f("start@5s,kill9@5s,kill9@1s,start@2s", Fault{d, FaultKill9, time.Second}, Fault{d, FaultStart, 2 * time.Second},
		Fault{d, FaultStart, 5 * time.Second}, Fault{d, FaultKill9, 5 * time.Second})
	f("kill9@0s", Fault{d, FaultKill9, 0})
	// Any action name for a fault command.
	f("db:partition-net_1@3s", Fault{"db", "partition-net_1", 3 * time.Second})

	bad := func(in, wantErr string) {
		t.Helper()
		_, err := ParseFaults(in)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("ParseFaults(%q): error %v, want one containing %q", in, err, wantErr)
		}
	}
	bad("kill9", "want [target:]action@offset")
	bad("kill9@15", "not a duration")
	bad("kill9@", "not a duration")
	bad("kill9@soon", "not a duration")
	bad("kill9@-1s", "negative offset")
	bad("kill9@1s,,start@2s", "empty entry")
	bad("kill9@1s,", "empty entry")
	bad("@1s", "must match")
	bad("nats:@1s", "must match")
	bad(":kill9@1s", "must match")
	bad("kill 9@1s", "must match")
	bad("a:b:c@1s", "must match")
	bad("kill9@1s@2s", "not a duration")
}

func TestFaultString(t *testing.T) {
	in := "kill9@15s,nats:start@1m0.5s"
	fs, err := ParseFaults(in)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, f := range fs {
		parts = append(parts, f.String())
	}
	if got := strings.Join(parts, ","); got != in {
		t.Fatalf("round trip: %q, want %q", got, in)
	}
}

func TestValidateFaults(t *testing.T) {
	spawned := map[string]bool{TargetDaemon: true, TargetNATS: true}
	daemonOnly := map[string]bool{TargetDaemon: true}
	f := func(schedule string, spawned map[string]bool, haveCmd bool, wantErr string) {
		t.Helper()
		fs, err := ParseFaults(schedule)
		if err != nil {
			t.Fatal(err)
		}
		err = Validate(fs, spawned, haveCmd)
		switch {
		case wantErr == "" && err != nil:
			t.Fatalf("%q: %v", schedule, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Fatalf("%q: error %v, want one containing %q", schedule, err, wantErr)
		}
	}
	f("", nil, false, "")
	f("kill9@1s,start@2s,sigterm@3s,start@4s,sigstop@5s,sigcont@6s", daemonOnly, false, "")
	f("kill9@1s,start@2s,nats:kill9@3s,nats:start@4s", spawned, false, "")
	f("sigstop@1s,kill9@2s,start@3s", daemonOnly, false, "")        // kill9 ends a pause too
	f("kill9@1s,start@1s", daemonOnly, false, "")                   // immediate restart
	f("start@1s", daemonOnly, false, "daemon is running by then")   // already running
	f("kill9@1s,kill9@2s,start@3s", daemonOnly, false, "stopped")   // killed twice
	f("sigcont@1s", daemonOnly, false, "daemon is running by then") // not paused
	f("sigstop@1s,sigterm@2s,sigcont@3s", daemonOnly, false, "paused by then")
	f("sigstop@1s,sigstop@2s,sigcont@3s", daemonOnly, false, "paused by then")
	f("kill9@1s", daemonOnly, false, "leaves daemon stopped at the end")
	f("sigstop@1s", daemonOnly, false, "leaves daemon paused at the end")
	f("nats:kill9@1s,nats:start@2s", daemonOnly, false, "no --fault-cmd")
	f("nats:kill9@1s", daemonOnly, true, "") // the command's business
	f("kill9@1s,start@2s", nil, false, "not spawned")
	f("kill9@1s,start@2s", nil, true, "")
	f("member2:netsplit@1s", nil, true, "")
	f("reboot@1s", daemonOnly, false, `unknown action "reboot"`)
}

func TestSplitCommand(t *testing.T) {
	f := func(in string, want ...string) {
		t.Helper()
		got, err := SplitCommand(in)
		if err != nil {
			t.Fatalf("SplitCommand(%q): %v", in, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("SplitCommand(%q) = %q, want %q", in, got, want)
		}
	}
	f("bin/flashreturnd --data-dir /tmp/x", "bin/flashreturnd", "--data-dir", "/tmp/x")
	f("  a \t b\n c  ", "a", "b", "c")
	f(`a 'b c' "d e" f\ g`, "a", "b c", "d e", "f g")
	f(`a '' ""`, "a", "", "")
	f(`a 'it''s' "say \"hi\" \\ \n"`, "a", "its", `say "hi" \ \n`)
	f(`--x='$HOME' y"z"w`, "--x=$HOME", "yzw")
	for _, in := range []string{"", "   ", `a 'b`, `a "b`, `a \`} {
		if _, err := SplitCommand(in); err == nil {
			t.Fatalf("SplitCommand(%q): no error", in)
		}
	}
}

func TestDaemonReadyURL(t *testing.T) {
	f := func(cmd, want string) {
		t.Helper()
		argv, err := SplitCommand(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if got := daemonReadyURL(argv); got != want {
			t.Fatalf("%q: %q, want %q", cmd, got, want)
		}
	}
	f("bin/flashreturnd --http 127.0.0.1:18080", "http://127.0.0.1:18080/readyz")
	f("bin/flashreturnd -http=127.0.0.1:18080", "http://127.0.0.1:18080/readyz")
	f("bin/flashreturnd --http=:9000", "http://127.0.0.1:9000/readyz")
	f("bin/flashreturnd --http 0.0.0.0:9000", "http://127.0.0.1:9000/readyz")
	f("bin/flashreturnd --http [::1]:9000", "http://[::1]:9000/readyz")
	f("/opt/fr/flashreturnd --data-dir x", "http://127.0.0.1:8080/readyz")
	f("bin/flashreturnd --http off", "")
	f("bin/other --data-dir x", "")
	f("bin/flashreturnd -- --http 1.2.3.4:5", "http://127.0.0.1:8080/readyz")
	if got := SpawnPartitions("bin/flashreturnd --partitions 8 --data-dir x"); got != 8 {
		t.Fatalf("partitions %d, want 8", got)
	}
	if got := SpawnPartitions("bin/flashreturnd --partitions=x"); got != 0 {
		t.Fatalf("partitions %d, want 0", got)
	}
	for in, want := range map[string]string{"nats://127.0.0.1:4222": "127.0.0.1:4222", "nats://h": "h:4222",
		"nats://a:1,nats://b:2": "a:1", "tls://[::1]:7": "[::1]:7"} {
		if got, err := natsAddr(in); err != nil || got != want {
			t.Fatalf("natsAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := natsAddr("127.0.0.1:4222"); err == nil {
		t.Fatal("natsAddr without a scheme: no error")
	}
}

// partitionOf must be the contract's FNV-1a 32 modulo P.
func TestPartitionOf(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	for range 1000 {
		user := fmt.Sprintf("u%x-%d", rng.Uint64(), rng.IntN(1e6))
		p := 1 + rng.IntN(256)
		h := fnv.New32a()
		h.Write([]byte(user))
		if got, want := partitionOf(user, p), int(h.Sum32()%uint32(p)); got != want {
			t.Fatalf("seed %d: partitionOf(%q, %d) = %d, want %d", seed, user, p, got, want)
		}
	}
	if partitionOf("x", 0) != 0 {
		t.Fatal("p = 0 must give 0")
	}
}

func TestPartitionGaps(t *testing.T) {
	s := func(ms ...int) []time.Duration {
		out := make([]time.Duration, len(ms))
		for i, m := range ms {
			out[i] = time.Duration(m) * time.Millisecond
		}
		return out
	}
	at := [][]time.Duration{
		s(100, 990, 1001, 1500, 3000, 3100), // in flight at the fault (1001), then 1500 silent until 3000
		s(500),                              // nothing after the fault
		s(2000, 9000),                       // first after the fault at 2000; 9000 beyond the window
		nil,                                 // no traffic
		s(1000, 1200),                       // a decision exactly at the fault does not count as after it
	}
	got := partitionGaps(at, time.Second, 5*time.Second)
	want := []float64{1500, -1, 1000, -1, 200}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("gaps %v, want %v", got, want)
	}

	faults := []FaultResult{
		{Target: TargetDaemon, Action: FaultKill9, AtSec: 1},
		{Target: TargetDaemon, Action: FaultStart, AtSec: 2},
		{Target: TargetDaemon, Action: FaultSigstop, AtSec: 3.05, Error: "daemon is not running"}, // failed: not a window end
		{Target: TargetDaemon, Action: FaultKill9, AtSec: 4},
		{Target: TargetDaemon, Action: FaultStart, AtSec: -1, Error: "not reached"},
	}
	SetGaps(faults, at, 10*time.Second)
	k := faults[0]
	// All decisions together after 1s: 1001, 1200, 1500, 2000, 3000, 3100
	// before the kill at 4s: the longest silence is 1500 -> 2000... no,
	// 2000 -> 3000: 1000 ms.
	if k.WindowEndSec != 4 || k.GapMs != 1000 || k.Resumed != 3 || k.Partitions != 5 || k.PartitionGapMaxMs != 1500 ||
		k.PartitionGapP50Ms != 1000 {
		t.Fatalf("kill: %+v", k)
	}
	if st := faults[1]; st.WindowEndSec != 4 || st.GapMs != 1000 || !reflect.DeepEqual(st.PartitionGapsMs, []float64{1000, -1, -1, -1, -1}) {
		t.Fatalf("start: %+v", st)
	}
	if k2 := faults[3]; k2.WindowEndSec != 10 || k2.GapMs != 5000 || k2.Resumed != 1 {
		t.Fatalf("second kill: %+v", k2)
	}
	if nr := faults[4]; nr.GapMs != -1 || nr.PartitionGapsMs != nil {
		t.Fatalf("not reached: %+v", nr)
	}
}

func TestDecisionLog(t *testing.T) {
	base := time.Now()
	d := NewDecisionLog(base, 8)
	ub := "ub"
	for i := 0; partitionOf(ub, 8) == partitionOf("ua", 8); i++ {
		ub = fmt.Sprintf("ub%d", i)
	}
	d.Output("fr.out.refund.ua", base.Add(time.Second)) // not a decision
	d.Output("fr.out.decision.ua", base.Add(2*time.Second))
	d.Output("fr.out.decision.ua", base.Add(time.Second))
	d.Output("fr.out.decision."+ub, base.Add(3*time.Second))
	at := d.Sorted()
	pa, pb := partitionOf("ua", 8), partitionOf(ub, 8)
	if !reflect.DeepEqual(at[pa], []time.Duration{time.Second, 2 * time.Second}) || !reflect.DeepEqual(at[pb], []time.Duration{3 * time.Second}) {
		t.Fatalf("decision log %v (ua on %d, %s on %d)", at, pa, ub, pb)
	}
}
