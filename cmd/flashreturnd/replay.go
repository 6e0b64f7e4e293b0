package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bytedance/sonic"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/pipeline"
	"github.com/flashreturn/flashreturn/pipeline/defaults"
	"github.com/flashreturn/flashreturn/pipeline/replay"
	"github.com/flashreturn/flashreturn/pipeline/streams"
)

// replayCmd implements `flashreturnd replay`: what would policy B have
// decided over the stored inbound log, side by side with the baseline.
// It only reads (FR_IN, FR_MERCHANT) and can run against a live
// deployment: the ordered consumers it makes are ephemeral and leave no
// state on the server. Its flags must describe the streams as the daemon
// wrote them (--partitions, --layout, --max-future); their defaults are
// the daemon's, from pipeline/defaults. Exit codes: 0 report printed, 1
// the replay failed, 2 usage.
func replayCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("flashreturnd replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		policyArg  = fs.String("policy", "", "the policy to try (preset or file); required")
		baseline   = fs.String("baseline", defaults.Policy, "the policy to compare with (normally the live one)")
		natsURL    = fs.String("nats-url", "nats://"+defaults.NATSListen, "the NATS server holding FR_IN")
		partitions = fs.Int("partitions", defaults.Partitions, "P, as the daemon was run")
		layout     = fs.String("layout", string(streams.LayoutStreams), "inbound layout, as the daemon was run: streams or shared")
		tz         = fs.String("tz", defaults.Zone, "the shoppers' time zone")
		from       = fs.String("from", "", "start: an RFC 3339 time (stream ingest time) or a stream sequence")
		to         = fs.String("to", "", "end: an RFC 3339 time or a stream sequence")
		asJSON     = fs.Bool("json", false, "print the report as JSON")
		show       = fs.Int("show", 20, "how many changed requests to list")
		maxFuture  = fs.Duration("max-future", defaults.MaxFuture, "as the daemon was run: events dated further ahead of their stored time are dead letters (0: off)")
	)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: flashreturnd replay --policy B [--baseline A] [--from T|SEQ] [--to T|SEQ] [flags]\n\nReplays the stored inbound events with a fresh in-memory state under both\npolicies and reports them side by side. Publishes nothing.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	fail := func(err error) int { fmt.Fprintln(stderr, "flashreturnd replay:", err); return 1 }
	if *policyArg == "" {
		fs.Usage()
		return 2
	}
	b, err := loadPolicy(*policyArg)
	if err != nil {
		return fail(err)
	}
	a, err := loadPolicy(*baseline)
	if err != nil {
		return fail(err)
	}
	loc, err := time.LoadLocation(*tz)
	if err != nil {
		return fail(err)
	}
	// The report lists at most --show changed requests; every change is
	// still counted (MaxChanged bounds memory, not the count).
	o := replay.Options{Policies: []*core.Policy{a, b}, Loc: loc, Layout: streams.Layout(*layout), Partitions: *partitions, MaxChanged: max(*show, 1), MaxFuture: *maxFuture}
	if *maxFuture == 0 {
		// As for the daemon: the flag's 0 is off, Options' 0 the default.
		o.MaxFuture = -1
	}
	if err := parseBound(*from, &o.From, &o.FromSeq); err != nil {
		return fail(fmt.Errorf("--from: %w", err))
	}
	if err := parseBound(*to, &o.To, &o.ToSeq); err != nil {
		return fail(fmt.Errorf("--to: %w", err))
	}
	nc, err := nats.Connect(*natsURL)
	if err != nil {
		// The URL may carry credentials: name the server without them.
		return fail(fmt.Errorf("connect %s: %w", pipeline.RedactURL(*natsURL), err))
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fail(err)
	}
	res, err := replay.Run(context.Background(), js, o)
	if err != nil {
		return fail(err)
	}
	if *asJSON {
		out, _ := sonic.ConfigStd.MarshalIndent(res, "", "  ")
		_, _ = stdout.Write(append(out, '\n'))
		return 0
	}
	printReplay(stdout, res, *show)
	return 0
}

// parseBound reads --from or --to: a bare number is a stream sequence
// (exact, per stream: with the streams layout each partition numbers its
// own), anything else an RFC 3339 time compared with the stored
// timestamps (approximate across partitions, but what an operator
// knows). "" leaves the bound open.
func parseBound(s string, t *time.Time, seq *uint64) error {
	if s == "" {
		return nil
	}
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		*seq = n
		return nil
	}
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("%q is neither a sequence nor an RFC 3339 time", s)
	}
	*t = ts
	return nil
}

// printReplay writes the report as a table, baseline left, candidate
// right. The rows follow a request's life (decided, sent to review,
// resolved by people or deadlines, closed) and then the money, because
// the question an operator brings is "how many more approvals, at what
// exposure?". Reason rows appear only for reasons either policy gave.
func printReplay(w io.Writer, r *replay.Result, show int) {
	fmt.Fprintf(w, "replayed %d events (%d dead letters) in %.2fs: %.0f events/s per policy pair\n\n", r.Events, r.DeadLetters, r.Seconds, r.EventsPerSec)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	a, b := r.Policies[0], r.Policies[1]
	row := func(name string, f func(p *replay.PolicyStats) string) {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", name, f(a), f(b))
	}
	row("policy", func(p *replay.PolicyStats) string { return p.Name + " " + p.Version })
	row("requests", func(p *replay.PolicyStats) string { return strconv.Itoa(p.Requests) })
	row("approved", func(p *replay.PolicyStats) string {
		return fmt.Sprintf("%d (%.1f%%)", p.Approved, 100*p.ApprovalRate)
	})
	row("review", func(p *replay.PolicyStats) string { return strconv.Itoa(p.Review) })
	row("  of which only a person can approve", func(p *replay.PolicyStats) string { return strconv.Itoa(p.ToPeople) })
	row("  of which the deadline approves if silent", func(p *replay.PolicyStats) string { return strconv.Itoa(p.DeadlineApprovable) })
	row("approved by the review deadline", func(p *replay.PolicyStats) string { return strconv.Itoa(p.ApprovedByDeadline) })
	row("approved by people", func(p *replay.PolicyStats) string {
		return strconv.Itoa(p.Resolutions["approved/merchant"] + p.Resolutions["approved/platform"])
	})
	row("rejected by people", func(p *replay.PolicyStats) string {
		return strconv.Itoa(p.Resolutions["rejected/merchant"] + p.Resolutions["rejected/platform"])
	})
	row("closed, nothing sent back", func(p *replay.PolicyStats) string { return strconv.Itoa(p.ClosedNotReturned) })
	row("rejected", func(p *replay.PolicyStats) string { return strconv.Itoa(p.Rejected) })
	row("refunded (yuan)", func(p *replay.PolicyStats) string { return yuan(p.RefundFen) })
	row("advanced (yuan)", func(p *replay.PolicyStats) string { return yuan(p.AdvancedFen) })
	row("outstanding at end (yuan)", func(p *replay.PolicyStats) string { return yuan(p.OutstandingFen) })
	row("max outstanding, one shopper (yuan)", func(p *replay.PolicyStats) string { return yuan(p.MaxUserExposed) })
	row("promised at end (yuan)", func(p *replay.PolicyStats) string { return yuan(p.PromisedFen) })
	row("clawbacks (yuan)", func(p *replay.PolicyStats) string { return yuan(p.ClawbackFen) })
	row("  of which not returned (yuan)", func(p *replay.PolicyStats) string { return yuan(p.NotReturnedFen) })
	row("compensations", func(p *replay.PolicyStats) string { return strconv.Itoa(p.Compensations) })
	codes := map[string]bool{}
	for _, p := range r.Policies {
		for c := range p.Reasons {
			codes[c] = true
		}
	}
	for c := core.Code(0); c < core.NumCodes; c++ {
		if codes[c.String()] {
			row("  "+c.String(), func(p *replay.PolicyStats) string { return strconv.Itoa(p.Reasons[c.String()]) })
		}
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\n%d requests change outcome", r.ChangedCount)
	if r.ChangedCount > 0 {
		fmt.Fprintf(w, "; the first %d:\n", min(show, len(r.Changed)))
		for _, c := range r.Changed[:min(show, len(r.Changed))] {
			fmt.Fprintf(w, "  %s/%s: %s\n", c.UserID, c.RequestID, strings.Join(pair(c.Decisions, c.Reasons), " -> "))
		}
	} else {
		fmt.Fprintln(w)
	}
}

// pair formats one changed request's outcome under each policy as
// "decision [reasons]", in the order of the report's columns.
func pair(ds, rs []string) []string {
	out := make([]string, len(ds))
	for i := range ds {
		out[i] = ds[i]
		if rs[i] != "" {
			out[i] += " [" + rs[i] + "]"
		}
	}
	return out
}

// yuan formats fen as yuan with two decimals. Money is integer fen
// everywhere in flashreturn (no float rounding in a refund); only the
// report turns it into yuan, for people.
func yuan(fen int64) string { return fmt.Sprintf("%d.%02d", fen/100, fen%100) }
