package wire

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/flashreturn/flashreturn/internal/core"
)

// The tests in this file hold the package's names to shared/contract.md:
// every subject, stream, DLQ reason and reason code the contract's tables
// and lists name must have its constant here, and every constant here must
// be named there. They parse testdata/contract.md, a committed copy, so
// that a clean clone of the repository is self-contained;
// TestContractCopyIsCurrent keeps the copy equal to ../shared/contract.md
// when that file is beside the repository.

const contractCopy = "testdata/contract.md"

// contractDoc is the parsed contract: its text and its "## " sections.
type contractDoc struct {
	text     string
	sections map[string]string
}

func loadContract(t *testing.T) contractDoc {
	t.Helper()
	b, err := os.ReadFile(contractCopy)
	if err != nil {
		t.Fatal(err)
	}
	d := contractDoc{text: string(b), sections: map[string]string{}}
	var name string
	var body strings.Builder
	flush := func() {
		if name != "" {
			d.sections[name] = body.String()
		}
		body.Reset()
	}
	for line := range strings.Lines(d.text) {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			flush()
			name = strings.TrimSpace(h)
			continue
		}
		body.WriteString(line)
	}
	flush()
	return d
}

// section returns the body of "## name" or fails the test: a renamed
// heading must not turn the checks below into silent no-ops.
func (d contractDoc) section(t *testing.T, name string) string {
	t.Helper()
	s, ok := d.sections[name]
	if !ok {
		t.Fatalf("contract.md has no section %q", name)
	}
	return s
}

var backticked = regexp.MustCompile("`([^`]+)`")

// codeSpans returns the backticked spans of s, in order.
func codeSpans(s string) []string {
	var out []string
	for _, m := range backticked.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// tableRows returns the cells of every body row of the markdown tables in
// s (header and separator rows left out).
func tableRows(s string) [][]string {
	var rows [][]string
	header := true
	for line := range strings.Lines(s) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			header = true
			continue
		}
		if header {
			header = false // this is the header row; the separator follows
			continue
		}
		if strings.HasPrefix(line, "| ---") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows = append(rows, cells)
	}
	return rows
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

func TestContractCopyIsCurrent(t *testing.T) {
	shared := filepath.Join(repoRoot(t), "..", "shared", "contract.md")
	want, err := os.ReadFile(shared)
	if os.IsNotExist(err) {
		t.Skipf("%s does not exist (a clone without the shared specs beside it); comparing the committed copy is skipped", shared)
	}
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(contractCopy)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("internal/wire/%s differs from %s: copy it (cp %s internal/wire/%s) and fix what the contract tests then report", contractCopy, shared, shared, contractCopy)
	}
}

func TestContractInboundSubjects(t *testing.T) {
	d := loadContract(t)
	rows := tableRows(d.section(t, "Inbound subjects"))
	if len(rows) == 0 {
		t.Fatal("no inbound subject table")
	}
	seenKinds := map[string]bool{}
	seenTypes := map[string]bool{}
	for _, r := range rows {
		subj := codeSpans(r[0])
		if len(subj) != 1 {
			t.Errorf("inbound row %q: want one subject, got %q", r, subj)
			continue
		}
		types := codeSpans(r[1])
		if len(types) == 0 {
			t.Errorf("inbound row %q lists no type", r)
		}
		switch {
		case strings.HasPrefix(subj[0], InPrefix):
			kind := strings.TrimSuffix(strings.TrimPrefix(subj[0], InPrefix), ".<user_id>")
			seenKinds[kind] = true
			if !slices.Contains(InKinds[:], kind) {
				t.Errorf("contract subject %s: kind %q is not in InKinds %q", subj[0], kind, InKinds)
			}
			if got := InSubject(kind, "<user_id>"); got != subj[0] {
				t.Errorf("InSubject(%q, <user_id>) = %s, contract says %s", kind, got, subj[0])
			}
			if _, k, u, ok := ParseSubject(InSubject(kind, "u1")); !ok || k != kind || u != "u1" {
				t.Errorf("ParseSubject(InSubject(%q, u1)) = %q %q %v", kind, k, u, ok)
			}
			for _, typ := range types {
				seenTypes[typ] = true
				et, ok := core.ParseEventType(typ)
				if !ok {
					t.Errorf("contract type %s on %s is no core.EventType", typ, subj[0])
					continue
				}
				if got := KindOf(et); got != kind {
					t.Errorf("KindOf(%s) = %q, contract publishes it on %s", typ, got, subj[0])
				}
			}
		case strings.HasPrefix(subj[0], MerchantPrefix):
			if got := MerchantSubject("<merchant_id>"); got != subj[0] {
				t.Errorf("MerchantSubject(<merchant_id>) = %s, contract says %s", got, subj[0])
			}
			if id, ok := MerchantOf(MerchantSubject("m1")); !ok || id != "m1" {
				t.Errorf("MerchantOf(MerchantSubject(m1)) = %q %v", id, ok)
			}
			if !slices.Equal(types, []string{TypeMerchantUpdated}) {
				t.Errorf("merchant subject types %q, want [%s]", types, TypeMerchantUpdated)
			}
			seenTypes[TypeMerchantUpdated] = true
		default:
			t.Errorf("inbound subject %s has no wire prefix", subj[0])
		}
	}
	// And the other way: everything a publisher may use is in the table.
	for _, k := range InKinds {
		if !seenKinds[k] {
			t.Errorf("InKinds has %q, which the contract's inbound table does not list", k)
		}
	}
	for et := core.EventOrderPaid; et.String() != ""; et++ {
		if et == core.EventClock {
			continue // the daemon's own ticks are not part of the published contract
		}
		if !seenTypes[et.String()] {
			t.Errorf("core event type %s is not in the contract's inbound table", et)
		}
	}
}

func TestContractOutboundSubjects(t *testing.T) {
	d := loadContract(t)
	rows := tableRows(d.section(t, "Outbound subjects"))
	seen := map[string]bool{}
	dlq := false
	for _, r := range rows {
		subj := codeSpans(r[0])
		if len(subj) != 1 {
			t.Errorf("outbound row %q: want one subject, got %q", r, subj)
			continue
		}
		switch {
		case strings.HasPrefix(subj[0], OutPrefix):
			kind := strings.TrimSuffix(strings.TrimPrefix(subj[0], OutPrefix), ".<user_id>")
			seen[kind] = true
			if !slices.Contains(OutKinds[:], kind) {
				t.Errorf("contract subject %s: kind %q is not in OutKinds %q", subj[0], kind, OutKinds)
			}
			if got := OutKindSubject(kind, "<user_id>"); got != subj[0] {
				t.Errorf("OutKindSubject(%q, <user_id>) = %s, contract says %s", kind, got, subj[0])
			}
			if k, u, ok := ParseOutSubject(OutKindSubject(kind, "u1")); !ok || k != kind || u != "u1" {
				t.Errorf("ParseOutSubject(OutKindSubject(%q, u1)) = %q %q %v", kind, k, u, ok)
			}
		case strings.HasPrefix(subj[0], DLQPrefix):
			dlq = true
			if got := DLQSubject("<reason>"); got != subj[0] {
				t.Errorf("DLQSubject(<reason>) = %s, contract says %s", got, subj[0])
			}
		default:
			t.Errorf("outbound subject %s has no wire prefix", subj[0])
		}
	}
	if !dlq {
		t.Error("the contract's outbound table has no fr.dlq row")
	}
	for _, k := range OutKinds {
		if !seen[k] {
			t.Errorf("OutKinds has %q, which the contract's outbound table does not list", k)
		}
	}
	// Every effect the core emits on fr.out has its row, and OutSubject
	// agrees with OutKindSubject for it.
	for k := core.EffectDecision; k.String() != ""; k++ {
		if k == core.EffectDeadLetter {
			if OutKindOf(k) != "" {
				t.Errorf("OutKindOf(EffectDeadLetter) = %q, want none", OutKindOf(k))
			}
			continue
		}
		ok := OutKindOf(k)
		if !seen[ok] {
			t.Errorf("effect kind %s has no row in the contract's outbound table", k)
		}
		e := core.Effect{Kind: k, UserID: "u1"}
		if OutSubject(&e) != OutKindSubject(ok, "u1") {
			t.Errorf("OutSubject(%s) = %s, OutKindSubject = %s", k, OutSubject(&e), OutKindSubject(ok, "u1"))
		}
	}
}

func TestContractStreams(t *testing.T) {
	d := loadContract(t)
	rows := tableRows(d.section(t, "Streams"))
	var got []StreamSpec
	for _, r := range rows {
		name, subj := codeSpans(r[0]), codeSpans(r[1])
		if len(name) != 1 || len(subj) != 1 {
			t.Errorf("stream row %q: want one name and one subject filter", r)
			continue
		}
		got = append(got, StreamSpec{name[0], subj[0]})
	}
	for _, s := range got {
		if !slices.Contains(Streams[:], s) {
			t.Errorf("contract stream %s on %s is not in wire.Streams", s.Name, s.Subjects)
		}
	}
	for _, s := range Streams {
		if !slices.Contains(got, s) {
			t.Errorf("wire.Streams has %s on %s, which the contract's stream table does not list", s.Name, s.Subjects)
		}
	}
	// The inbound stream is prose, not a table row: "one stream `FR_IN` on
	// `fr.in.>`". Every FR_ name anywhere must be a constant, and the
	// constants must all be named.
	known := []string{StreamIn}
	for _, s := range Streams {
		known = append(known, s.Name)
	}
	named := map[string]bool{}
	for _, span := range codeSpans(d.text) {
		if strings.HasPrefix(span, "FR_") {
			named[span] = true
			if !slices.Contains(known, span) {
				t.Errorf("contract names stream %s, which has no wire constant", span)
			}
		}
	}
	for _, k := range known {
		if !named[k] {
			t.Errorf("wire stream %s is not named in the contract", k)
		}
	}
	if !strings.Contains(d.section(t, "Streams"), "`"+StreamIn+"` on `"+InSubjects+"`") {
		t.Errorf("the contract no longer says %s stores %s", StreamIn, InSubjects)
	}
}

// TestContractEverySubject checks every backticked fr. subject anywhere in
// the contract (tables and prose) against what the helpers build.
func TestContractEverySubject(t *testing.T) {
	d := loadContract(t)
	known := map[string]bool{
		InSubject("<kind>", "<user_id>"): true,
		MerchantSubject("<merchant_id>"): true,
		DLQSubject("<reason>"):           true,
		InSubjects:                       true,
		MerchantSubjects:                 true,
		OutSubjects:                      true,
		DLQSubjects:                      true,
	}
	for _, k := range InKinds {
		known[InSubject(k, "<user_id>")] = true
	}
	for _, k := range OutKinds {
		known[OutKindSubject(k, "<user_id>")] = true
	}
	named := map[string]bool{}
	for _, span := range codeSpans(d.text) {
		if !strings.HasPrefix(span, "fr.") {
			continue
		}
		named[span] = true
		if !known[span] {
			t.Errorf("contract subject %s is built by no wire helper or constant", span)
		}
	}
	for s := range known {
		if !named[s] {
			t.Errorf("wire builds %s, which the contract never names", s)
		}
	}
}

// TestContractDLQReasons parses the sentence "DLQ reasons: `bad_json` (...),
// ..." of the outbound section. Parenthesised remarks name fields
// (`user_id`, `at`), so they are cut before the codes are read; the list
// ends at the first full stop after that.
func TestContractDLQReasons(t *testing.T) {
	d := loadContract(t)
	s := d.section(t, "Outbound subjects")
	i := strings.Index(s, "DLQ reasons:")
	if i < 0 {
		t.Fatal("contract has no \"DLQ reasons:\" list")
	}
	s = s[i+len("DLQ reasons:"):]
	s = regexp.MustCompile(`\([^)]*\)`).ReplaceAllString(s, "")
	if j := strings.Index(s, ". "); j >= 0 {
		s = s[:j]
	}
	got := codeSpans(s)
	if len(got) == 0 {
		t.Fatal("no DLQ reason parsed")
	}
	for _, r := range got {
		if !KnownReason(r) {
			t.Errorf("contract DLQ reason %s is not in wire.Reasons", r)
		}
		if sub, ok := ParseDLQSubject(DLQSubject(r)); !ok || sub != r {
			t.Errorf("ParseDLQSubject(DLQSubject(%s)) = %q %v", r, sub, ok)
		}
	}
	for _, r := range Reasons {
		if !slices.Contains(got, r) {
			t.Errorf("wire.Reasons has %s, which the contract's DLQ reasons do not list", r)
		}
	}
	if !slices.Equal(got, Reasons[:]) {
		t.Errorf("wire.Reasons order %q differs from the contract's %q (metrics are registered in this order)", Reasons, got)
	}
}

// TestContractReasonCodes checks the decision reason codes, which live in
// core (they are the decision's vocabulary, not the wire's).
func TestContractReasonCodes(t *testing.T) {
	d := loadContract(t)
	s := d.section(t, "Reason codes")
	if i := strings.Index(s, "Add codes"); i >= 0 {
		s = s[:i] // the rest of the section is advice, not codes
	}
	got := codeSpans(s)
	var codes []string
	for c := core.Code(0); c < core.NumCodes; c++ {
		codes = append(codes, c.String())
	}
	for _, c := range got {
		if !slices.Contains(codes, c) {
			t.Errorf("contract reason code %s is no core.Code", c)
		}
	}
	for _, c := range codes {
		if !slices.Contains(got, c) {
			t.Errorf("core.Code %s is not in the contract's reason codes", c)
		}
	}
}

// TestContractHelpers covers the helpers' edges that the table checks do
// not reach: what they refuse.
func TestContractHelpers(t *testing.T) {
	if got := PartitionStream(7); got != "FR_IN_7" {
		t.Errorf("PartitionStream(7) = %s", got)
	}
	if got := PartitionFilter(7); got != "fr.p.7.>" {
		t.Errorf("PartitionFilter(7) = %s", got)
	}
	src, dest := PartitionMapping(4)
	if src != InWildcard || !strings.HasPrefix(dest, PartPrefix) {
		t.Errorf("PartitionMapping(4) = %s -> %s", src, dest)
	}
	for p := range 4 {
		subj := ClockSubject(p, 4)
		part, kind, user, ok := ParseSubject(subj)
		if !ok || part != -1 || kind != KindClock || Partition(user, 4) != p {
			t.Errorf("ClockSubject(%d, 4) = %s does not hash to its partition", p, subj)
		}
	}
	if ClockSubject(4, 4) != "" || ClockSubject(-1, 4) != "" {
		t.Error("ClockSubject outside [0, pCount) is not empty")
	}
	for _, bad := range []string{"fr.out.decision", "fr.out.decision.", "fr.out.nope.u1", "fr.out.decision.a.b", "fr.in.order.u1", "fr.out..u1"} {
		if k, u, ok := ParseOutSubject(bad); ok {
			t.Errorf("ParseOutSubject(%q) = %q %q, want refusal", bad, k, u)
		}
	}
	for _, bad := range []string{"fr.dlq.nope", "fr.dlq.", "fr.out.decision.u1"} {
		if r, ok := ParseDLQSubject(bad); ok {
			t.Errorf("ParseDLQSubject(%q) = %q, want refusal", bad, r)
		}
	}
	for _, bad := range []string{"fr.merchant.", "fr.merchant.a.b", "fr.in.order.m1", "fr.p.1.order.m1"} {
		if id, ok := MerchantOf(bad); ok {
			t.Errorf("MerchantOf(%q) = %q, want refusal", bad, id)
		}
	}
	if OutKindOf(0) != "" || OutKindOf(200) != "" {
		t.Error("OutKindOf of an invalid kind is not empty")
	}
}
