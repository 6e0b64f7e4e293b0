package cluster

import (
	"encoding/json"
	"testing"
)

// TestOwnerKey: FR_OWNERS keys round-trip (the assignment and snapshot
// names are tested in internal/ownership).
func TestOwnerKey(t *testing.T) {
	if p, ok := ownerKeyPartition(OwnerKey(63)); !ok || p != 63 {
		t.Fatal(p, ok)
	}
	for _, bad := range []string{"", "p.", "q.1", "p.x"} {
		if _, ok := ownerKeyPartition(bad); ok {
			t.Fatalf("%q parsed", bad)
		}
	}
}

// TestClusterAdvertiseHTTP covers the advertised address's default, its
// validation, and member records with and without it.
func TestClusterAdvertiseHTTP(t *testing.T) {
	for listen, want := range map[string]string{
		"127.0.0.1:8080":  "http://127.0.0.1:8080",
		"10.0.0.5:9000":   "http://10.0.0.5:9000",
		"fr-a.local:8080": "http://fr-a.local:8080",
		"[::1]:8080":      "http://[::1]:8080",
		":8080":           "",
		"0.0.0.0:8080":    "",
		"[::]:8080":       "",
		"127.0.0.1:0":     "",
		"off":             "",
		"":                "",
	} {
		if got := DefaultAdvertiseHTTP(listen); got != want {
			t.Errorf("DefaultAdvertiseHTTP(%q) = %q, want %q", listen, got, want)
		}
	}
	for _, tc := range []struct {
		adv, want string
		ok        bool
	}{
		{"http://10.0.0.5:8080/", "http://10.0.0.5:8080", true},
		{"https://fr-a.example/flashreturn", "https://fr-a.example/flashreturn", true},
		{"10.0.0.5:8080", "", false},
		{"ftp://10.0.0.5", "", false},
		{"http://", "", false},
		{"http://h:1/?q=1", "", false},
	} {
		got, err := ParseAdvertiseHTTP(tc.adv)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseAdvertiseHTTP(%q): got %q, %v", tc.adv, got, err)
		}
	}
	// Records: without the field (older daemons), with a bare host:port
	// (what older daemons wrote), with a URL.
	for raw, want := range map[string]string{
		`{"member":"a","instance":"x"}`:                               "",
		`{"member":"a","instance":"x","http":"10.0.0.5:8080"}`:        "http://10.0.0.5:8080",
		`{"member":"a","instance":"x","http":"[::]:8080"}`:            "",
		`{"member":"a","instance":"x","http":"http://10.0.0.5:8080"}`: "http://10.0.0.5:8080",
		`{"member":"a","instance":"x","http":"gopher://x"}`:           "",
	} {
		var r memberRecord
		if err := json.Unmarshal([]byte(raw), &r); err != nil || r.Member != "a" {
			t.Fatalf("%s: %+v %v", raw, r, err)
		}
		if got := memberBase(r.HTTP); got != want {
			t.Errorf("%s: base %q, want %q", raw, got, want)
		}
	}
}
