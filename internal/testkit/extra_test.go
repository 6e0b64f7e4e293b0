package testkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain makes this test binary its own child for TestChild.
func TestMain(m *testing.M) {
	RunChild("TESTKIT_CHILD", func(args []string) int {
		fmt.Print(strings.Join(args, "|"))
		return len(args)
	})
	os.Exit(m.Run())
}

// TestChild: the child gets the arguments whole (spaces included) and its
// exit code is the run function's.
func TestChild(t *testing.T) {
	cmd := ChildCommand(context.Background(), "TESTKIT_CHILD", "a b", "c")
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || string(out) != "a b|c" {
		t.Fatalf("child: %v, stdout %q; want exit 2 and %q", err, out, "a b|c")
	}
}

// TestEventAt: the time is read to the nanosecond, zone kept.
func TestEventAt(t *testing.T) {
	at := EventAt(t, []byte(`{"type":"x","at":"2026-11-11T10:00:00.000000001+08:00"}`))
	if want := time.Date(2026, 11, 11, 2, 0, 0, 1, time.UTC); !at.Equal(want) {
		t.Fatalf("at %v, want %v", at, want)
	}
}

// TestEqualNilEmpty: nil and empty lists are equal at any depth, other
// differences still count, and the compared values are not changed.
func TestEqualNilEmpty(t *testing.T) {
	type inner struct{ L []string }
	type outer struct {
		A []int
		M map[string]int
		P *inner
		I []inner
		N [2]inner
	}
	a := &outer{A: []int{}, M: map[string]int{}, P: &inner{L: []string{}}, I: []inner{{L: []string{}}}}
	b := &outer{P: &inner{}, I: []inner{{}}}
	if !EqualNilEmpty(a, b) || !EqualNilEmpty(*a, *b) {
		t.Fatal("nil and empty differ")
	}
	if a.A == nil || a.P.L == nil || a.I[0].L == nil {
		t.Fatal("the comparison changed its argument")
	}
	b.N[1].L = []string{"x"}
	if EqualNilEmpty(a, b) {
		t.Fatal("a set list in an array element went unseen")
	}
	if EqualNilEmpty(a, nil) || !EqualNilEmpty(nil, nil) || EqualNilEmpty([]int{1}, []int{2}) {
		t.Fatal("nil or unequal values compared equal")
	}
}

// TestRenderDOM: the DOM comes back as the page's script left it.
func TestRenderDOM(t *testing.T) {
	bin := Chromium(t, "test RenderDOM")
	page := filepath.Join(t.TempDir(), "p.html")
	html := `<html><body><div id="x">0</div><script>setTimeout(() => { document.getElementById("x").textContent = "rendered" }, 500)</script></body></html>`
	if err := os.WriteFile(page, []byte(html), 0o644); err != nil {
		t.Fatal(err)
	}
	if dom := RenderDOM(t, bin, "file://"+page, 2*time.Second); !strings.Contains(dom, `<div id="x">rendered</div>`) {
		t.Fatalf("the page's timer did not run within the budget:\n%s", dom)
	}
}
