package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flashreturn/flashreturn/pipeline"
	"github.com/flashreturn/flashreturn/pipeline/defaults"
	"github.com/flashreturn/flashreturn/state"
)

func TestPolicyShowAndCheck(t *testing.T) {
	for _, name := range []string{"tmall-fast-return", "douyin-lightning", "jd-lightning-refund"} {
		var out, errb bytes.Buffer
		if code := run([]string{"policy", "show", name}, &out, &errb); code != 0 {
			t.Fatalf("policy show %s: exit %d: %s", name, code, errb.String())
		}
		path := filepath.Join(t.TempDir(), name+".yaml")
		if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		var chk bytes.Buffer
		if code := run([]string{"policy", "check", path}, &chk, &errb); code != 0 || !strings.Contains(chk.String(), "ok: policy "+name) {
			t.Fatalf("policy check %s: exit %d: %s %s", name, code, chk.String(), errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"policy", "show", "tmall-fast-return"}, &out, &errb); code != 0 {
		t.Fatal(errb.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte(strings.Replace(out.String(), "min_stars: 3", "min_stars: 9", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := run([]string{"policy", "check", bad}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "min_stars") {
		t.Fatalf("bad policy accepted or error does not name the field: exit %d: %s", code, errb.String())
	}
	if code := run([]string{"policy", "show", "nope"}, &out, &errb); code == 0 {
		t.Fatal("unknown preset accepted")
	}
}

func TestFlagsAndEnvironment(t *testing.T) {
	t.Setenv("FLASHRETURN_PARTITIONS", "16")
	t.Setenv("FLASHRETURN_POLICY", "douyin-lightning")
	var errb bytes.Buffer
	cfg, _, err := parseFlags([]string{"--partitions", "32"}, &errb)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Partitions != 32 || cfg.Policy.Name != "douyin-lightning" {
		t.Fatalf("flags over env: partitions %d policy %s", cfg.Partitions, cfg.Policy.Name)
	}
	if _, _, err := parseFlags([]string{"--js-sync", "sometimes"}, &errb); err == nil {
		t.Fatal("bad --js-sync accepted")
	}
	if _, _, err := parseFlags([]string{"--policy", "/no/such/file"}, &errb); err == nil {
		t.Fatal("missing policy file accepted")
	}
	if _, _, err := parseFlags([]string{"--state-compression", "zstd"}, &errb); err == nil || !strings.Contains(err.Error(), "--state-compression") {
		t.Fatalf("bad --state-compression: %v", err)
	}
	if cfg, _, err := parseFlags([]string{"--state-compression", "none"}, &errb); err != nil || cfg.StateCompression != state.CompressNone {
		t.Fatalf("--state-compression none: %v, %v", cfg, err)
	}
	// Retention: at least the duplicate window (JetStream refuses less).
	if _, _, err := parseFlags([]string{"--in-max-age", "1m"}, &errb); err == nil || !strings.Contains(err.Error(), "--in-max-age") {
		t.Fatalf("--in-max-age 1m: %v", err)
	}
	t.Setenv("FLASHRETURN_OUT_MAX_AGE", "30s")
	if _, _, err := parseFlags(nil, &errb); err == nil || !strings.Contains(err.Error(), "--out-max-age") {
		t.Fatalf("FLASHRETURN_OUT_MAX_AGE=30s: %v", err)
	}
	for _, args := range [][]string{
		{"--out-duplicate-window", "10m", "--out-max-age", "5m", "--in-max-age", "5m"}, // found in review: FR_OUT refused at start
		{"--in-max-age", "720h", "--out-max-age", "168h"},                              // markers would age out before their inputs
	} {
		if _, _, err := parseFlags(args, &errb); err == nil || !strings.Contains(err.Error(), "--out-max-age") {
			t.Errorf("%v: %v, want an --out-max-age error", args, err)
		}
	}
	// Cluster: a takeover must find the events since the last snapshot.
	snap := []string{"--member", "m1", "--in-max-age", "2h", "--out-max-age", "2h", "--snapshot-interval", "59m", "--lease", "1m"}
	if _, _, err := parseFlags(snap, &errb); err != nil {
		t.Fatalf("%v: %v", snap, err)
	}
	snap[len(snap)-3] = "1h"
	if _, _, err := parseFlags(snap, &errb); err == nil || !strings.Contains(err.Error(), "--snapshot-interval") {
		t.Fatalf("%v: %v, want a --snapshot-interval error", snap, err)
	}
	if _, _, err := parseFlags(snap[2:], &errb); err != nil { // not a cluster member: not checked
		t.Fatalf("%v: %v", snap[2:], err)
	}
	t.Setenv("FLASHRETURN_OUT_MAX_AGE", "720h")
	if cfg, _, err := parseFlags([]string{"--in-max-age", "336h"}, &errb); err != nil || cfg.InMaxAge != 336*time.Hour || cfg.OutMaxAge != 720*time.Hour {
		t.Fatalf("--in-max-age 336h, FLASHRETURN_OUT_MAX_AGE=720h: %+v, %v", cfg, err)
	}
}

// TestFlagsAdvertiseHTTP: --advertise-http defaults to http://<--http>
// when --http names a concrete host, else empty; the flag and
// FLASHRETURN_ADVERTISE_HTTP override the default.
func TestFlagsAdvertiseHTTP(t *testing.T) {
	t.Setenv("FLASHRETURN_ADVERTISE_HTTP", "") // restored after the test
	var errb bytes.Buffer
	for _, tc := range []struct {
		args []string
		env  string // FLASHRETURN_ADVERTISE_HTTP, "-" unset
		want string
	}{
		{nil, "-", "http://127.0.0.1:8080"},
		{[]string{"--http", "10.0.0.5:9090"}, "-", "http://10.0.0.5:9090"},
		{[]string{"--http", "fr-a:8080"}, "-", "http://fr-a:8080"},
		{[]string{"--http", ":8080"}, "-", ""},
		{[]string{"--http", "0.0.0.0:8080"}, "-", ""},
		{[]string{"--http", "[::]:8080"}, "-", ""},
		{[]string{"--http", "off"}, "-", ""},
		{[]string{"--http", ":8080", "--advertise-http", "http://fr-a.example:8080"}, "-", "http://fr-a.example:8080"},
		{[]string{"--http", ":8080"}, "https://fr-b.example/fr/", "https://fr-b.example/fr/"},
		{[]string{"--advertise-http", "http://flag:1"}, "http://env:1", "http://flag:1"},
	} {
		if tc.env == "-" {
			os.Unsetenv("FLASHRETURN_ADVERTISE_HTTP")
		} else {
			os.Setenv("FLASHRETURN_ADVERTISE_HTTP", tc.env)
		}
		cfg, _, err := parseFlags(tc.args, &errb)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if cfg.AdvertiseHTTP != tc.want {
			t.Errorf("%v (env %q): AdvertiseHTTP %q, want %q", tc.args, tc.env, cfg.AdvertiseHTTP, tc.want)
		}
	}
}

// TestFlagDefaultsAreConfigDefaults: with no flags, parseFlags yields the
// Config a library caller gets from a zero Config's WithDefaults, on
// every setting the two share (both read pipeline/defaults), and the
// replay command's defaults are the same values.
func TestFlagDefaultsAreConfigDefaults(t *testing.T) {
	for _, k := range []string{"FLASHRETURN_PARTITIONS", "FLASHRETURN_TZ", "FLASHRETURN_CACHE_MB", "FLASHRETURN_HTTP"} {
		if _, set := os.LookupEnv(k); set {
			t.Skipf("%s set in the environment", k)
		}
	}
	var errb bytes.Buffer
	cfg, _, err := parseFlags(nil, &errb)
	if err != nil {
		t.Fatal(err)
	}
	lib := pipeline.Config{}.WithDefaults()
	got := cfg.WithDefaults()
	for name, pair := range map[string][2]any{
		"partitions":  {got.Partitions, lib.Partitions},
		"tz":          {got.Loc.String(), lib.Loc.String()},
		"cache":       {got.CacheBytes, lib.CacheBytes},
		"batch":       {got.BatchMax, lib.BatchMax},
		"txn":         {got.MaxTxnBytes, lib.MaxTxnBytes},
		"clock":       {got.ClockInterval, lib.ClockInterval},
		"max-future":  {got.MaxFuture, lib.MaxFuture},
		"data-dir":    {got.DataDir, lib.DataDir},
		"http":        {got.HTTPAddr, lib.HTTPAddr},
		"nats-listen": {got.NATSListen, lib.NATSListen},
		"compression": {got.StateCompression, lib.StateCompression},
		"in-max-age":  {got.InMaxAge, lib.InMaxAge},
		"out-max-age": {got.OutMaxAge, lib.OutMaxAge},
	} {
		if pair[0] != pair[1] {
			t.Errorf("%s: flag default %v, Config default %v", name, pair[0], pair[1])
		}
	}
	if lib.Partitions != defaults.Partitions || lib.Loc.String() != defaults.Zone {
		t.Errorf("Config defaults %d %s differ from pipeline/defaults", lib.Partitions, lib.Loc)
	}
}

// TestFlagMemoryDefaults: the workers' batch cut (defaults.MaxTxnBytes)
// leaves half of Badger's transaction limit to a batch's outbox, and the
// default soft memory limit is 896 MiB against an external NATS and
// 1.5 GiB with the embedded server and P=64 (issue 15).
func TestFlagMemoryDefaults(t *testing.T) {
	var errb bytes.Buffer
	cfg, _, err := parseFlags(nil, &errb)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.WithDefaults().MaxTxnBytes; got != defaults.MaxTxnBytes || 2*defaults.MaxTxnBytes > state.DefaultMaxBatchBytes {
		t.Errorf("MaxTxnBytes %d (defaults %d), Badger's limit %d", got, defaults.MaxTxnBytes, state.DefaultMaxBatchBytes)
	}
	if got := defaultMemoryLimit(defaults.CacheBytes, 64, false) >> 20; got != 896 {
		t.Errorf("external NATS: limit %d MiB", got)
	}
	if got := defaultMemoryLimit(defaults.CacheBytes, 64, true) >> 20; got != 1536 {
		t.Errorf("embedded NATS, P=64: limit %d MiB", got)
	}
}
