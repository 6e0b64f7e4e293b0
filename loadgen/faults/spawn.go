package faults

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Process is a process loadgen spawned, as reported.
type Process struct {
	// Name is the fault target it answers to (TargetDaemon, TargetNATS).
	Name string `json:"name"`
	// Command is the command line as given.
	Command string `json:"command"`
	// Log is the file that got its stdout and stderr, every life of it.
	Log string `json:"log"`
	// Ready is how loadgen decided it was ready: an URL that answered
	// 200 or an address that accepted a connection.
	Ready string `json:"ready,omitempty"`
	// Kept says loadgen left it running at the end (Config.KeepSpawned).
	Kept bool `json:"kept,omitempty"`
	// Runs lists each life of the process, first to last.
	Runs []ProcessRun `json:"runs"`
}

// ProcessRun is one life of a spawned process.
type ProcessRun struct {
	// PID is the process id of this life.
	PID int `json:"pid"`
	// StartSec and EndSec are seconds since the run's first scheduled
	// send (negative before it); EndSec is 0 for a process still running.
	StartSec float64 `json:"start_sec"`
	EndSec   float64 `json:"end_sec,omitempty"`
	// Exit is how it ended ("exit status 0", "signal: killed"); empty
	// while it runs.
	Exit string `json:"exit,omitempty"`
}

// child is a process loadgen runs for the whole run: started before the
// first send, signalled and restarted by faults, stopped at the end. Its
// methods are safe for concurrent use. Every process it starts is waited
// for by a goroutine of its own, which closes done.
type child struct {
	name, command string
	argv          []string
	// log is shared by every life of the process, appended to, so a
	// crash's last words and the restart's first lines read in order.
	logPath   string
	log       *os.File
	readyDesc string
	ready     func(ctx context.Context) error // nil: none
	keep      bool

	mu   sync.Mutex
	cur  *os.Process
	done chan struct{} // closed when the current process has been waited for; nil before the first start
	// paused is remembered so that stop can SIGCONT first: a stopped
	// process does not act on SIGTERM, and the end of the run would then
	// wait the whole grace period and SIGKILL a daemon that could have
	// shut down cleanly.
	paused bool
	runs   []procRun
}

// procRun is one life: a kill9/start schedule gives a child several,
// and the report lists each with its pid and how it ended, so that an
// unexpected exit (a crash on restart) is told apart from the kill.
type procRun struct {
	pid        int
	start, end time.Time
	exit       string
}

// newChild prepares (does not start) a child whose output goes to a new
// log file under dir.
func newChild(name, command, dir, runID string, keep bool) (*child, error) {
	argv, err := SplitCommand(command)
	if err != nil {
		return nil, fmt.Errorf("loadgen: spawn %s: %w", name, err)
	}
	if dir == "" {
		dir = os.TempDir()
	}
	// The run id in the name keeps two runs side by side from writing
	// one file; O_TRUNC because a rerun with the same id is a new run.
	path := filepath.Join(dir, "loadgen-"+runID+"-"+name+".log")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("loadgen: spawn %s: log: %w", name, err)
	}
	return &child{name: name, command: command, argv: argv, logPath: path, log: f, keep: keep}, nil
}

// running reports whether the current process has not been waited for
// yet. Called with c.mu held. Liveness is the Wait goroutine's verdict,
// not a signal-0 probe, which a reused pid could fool.
func (c *child) running() bool {
	if c.done == nil {
		return false
	}
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// start starts the process; it fails if it is running.
func (c *child) start() (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running() {
		return 0, fmt.Errorf("%s is already running (pid %d)", c.name, c.cur.Pid)
	}
	fmt.Fprintf(c.log, "--- loadgen: starting %s at %s: %s\n", c.name, time.Now().Format(time.RFC3339Nano), c.command)
	cmd := exec.Command(c.argv[0], c.argv[1:]...)
	cmd.Stdout, cmd.Stderr = c.log, c.log // stdin: /dev/null
	// stdin stays /dev/null: a daemon must not read loadgen's
	// terminal, nor get its Ctrl-C (see sysProcAttr).
	cmd.SysProcAttr = sysProcAttr(c.keep)
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", c.name, err)
	}
	p := cmd.Process
	done := make(chan struct{})
	i := len(c.runs)
	c.runs = append(c.runs, procRun{pid: p.Pid, start: time.Now()})
	c.cur, c.done, c.paused = p, done, false
	// Exactly one Wait per process, in its own goroutine: it reaps
	// the zombie, records how the life ended, and closing done is
	// what every other wait (start after sigterm, stop) selects on.
	go func() {
		exit := "exit status 0"
		if err := cmd.Wait(); err != nil {
			exit = err.Error()
		}
		c.mu.Lock()
		c.runs[i].end, c.runs[i].exit = time.Now(), exit
		c.mu.Unlock()
		close(done)
	}()
	return p.Pid, nil
}

// signal sends sig to the running process.
func (c *child) signal(sig os.Signal) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running() {
		return 0, fmt.Errorf("%s is not running", c.name)
	}
	if err := c.cur.Signal(sig); err != nil {
		return c.cur.Pid, err
	}
	switch sig {
	case sigStop:
		c.paused = true
	case sigCont:
		c.paused = false
	}
	return c.cur.Pid, nil
}

// exited returns a channel closed once the current process has been
// waited for (closed already when none was started).
func (c *child) exited() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	return c.done
}

// lastExit is how the latest life ended, or "" while it runs.
func (c *child) lastExit() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.runs) == 0 {
		return ""
	}
	return c.runs[len(c.runs)-1].exit
}

// waitReady polls the readiness probe until it answers, the process
// exits, or timeout passes.
func (c *child) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	exited := c.exited()
	for {
		if c.ready == nil {
			return nil
		}
		err := c.ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited before it was ready (%s); see %s", c.name, c.lastExit(), c.logPath)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within %v (%s: %v); see %s", c.name, timeout, c.readyDesc, err, c.logPath)
		// A probe error is not fatal: a starting daemon refuses
		// connections until it listens. Only its exit or the
		// timeout ends the wait, and both name the log to read.
		case <-time.After(20 * time.Millisecond): // polling interval of the probe
		}
	}
}

// stop ends the process at the end of a run: SIGTERM (after SIGCONT if
// paused), then SIGKILL if it has not exited within grace, and waits for
// it. A kept child is left running. The log file is closed either way.
func (c *child) stop(grace time.Duration) {
	defer c.log.Close()
	if c.keep {
		return
	}
	c.mu.Lock()
	p, done, paused, running := c.cur, c.done, c.paused, c.running()
	c.mu.Unlock()
	if !running {
		if done != nil {
			<-done
		}
		return
	}
	if paused {
		_ = p.Signal(sigCont)
	}
	_ = p.Signal(sigTerm)
	select {
	case <-done:
		return
	case <-time.After(grace):
	}
	_ = p.Signal(sigKill)
	<-done
}

// report is the child as reported, times relative to base.
func (c *child) report(base time.Time) Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := Process{Name: c.name, Command: c.command, Log: c.logPath, Ready: c.readyDesc, Kept: c.keep && c.running()}
	for _, r := range c.runs {
		pr := ProcessRun{PID: r.pid, StartSec: r.start.Sub(base).Seconds(), Exit: r.exit}
		if !r.end.IsZero() {
			pr.EndSec = r.end.Sub(base).Seconds()
		}
		p.Runs = append(p.Runs, pr)
	}
	return p
}

// SplitCommand splits a command line into words the way a shell does for
// the simple cases: blanks separate words, '...' keeps everything
// literally, "..." keeps blanks and honours \" and \\, a backslash
// outside quotes escapes the next character. No variables, globs or
// redirections: the words are the program and its arguments.
func SplitCommand(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", s)
			}
			w.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					i++
				}
				w.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated \" in %q", s)
			}
			inWord = true
		case c == '\\':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("trailing \\ in %q", s)
			}
			i++
			w.WriteByte(s[i])
			inWord = true
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	if len(words) == 0 {
		return nil, errors.New("empty command line")
	}
	return words, nil
}

// flagValue returns the value of --name (or -name) in argv: "--name v",
// "--name=v", "-name v" or "-name=v".
func flagValue(argv []string, name string) (string, bool) {
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		if a == "--" {
			break
		}
		bare := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if bare == a {
			continue
		}
		if bare == name && i+1 < len(argv) {
			return argv[i+1], true
		}
		if v, ok := strings.CutPrefix(bare, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// daemonReadyURL derives flashreturnd's /readyz from its command line:
// the --http address, flashreturnd's default 127.0.0.1:8080 when the
// program is flashreturnd and names none, "" when HTTP is off or the
// program is something else.
// /readyz rather than the NATS port: a daemon that embeds its server
// can accept connections before it has recovered its state and
// started consuming; /readyz is its own word that it can decide, so
// readiness times in the report measure the whole restart.
func daemonReadyURL(argv []string) string {
	addr, ok := flagValue(argv, "http")
	if !ok {
		if !strings.HasPrefix(filepath.Base(argv[0]), "flashreturnd") {
			return ""
		}
		addr = "127.0.0.1:8080"
	}
	if addr == "" || addr == "off" {
		return ""
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	// A wildcard listen address is not a place to connect to;
	// the loopback reaches it on the same machine.
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz"
}

// natsAddr is host:port of the first server of a NATS URL list.
// Only the first server is probed: a spawned nats-server is one
// process, and the NATS URL list's first entry is where it listens.
func natsAddr(urls string) (string, error) {
	first, _, _ := strings.Cut(urls, ",")
	u, err := url.Parse(strings.TrimSpace(first))
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("loadgen: cannot tell the address of NATS URL %q", urls)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "4222"
	}
	return net.JoinHostPort(host, port), nil
}

// httpReady is a probe that passes when GET url answers 200.
func httpReady(u string) func(context.Context) error {
	// A one-second timeout per probe: a daemon that is up but hung must
	// not stall the readiness loop beyond its own deadline.
	client := &http.Client{Timeout: time.Second}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
}

// tcpReady is a probe that passes when addr accepts a connection.
func tcpReady(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	}
}

// SpawnConfig says which processes a run starts as its children and how
// it knows they are ready; see the Spawn fields of loadgen.Config, which
// it mirrors. Only its zero Spawn and SpawnNATS mean "nothing to start".
type SpawnConfig struct {
	// NATSURL is where the target's NATS server listens; its host and
	// port are the readiness probe of a spawned nats-server (and of a
	// daemon with no HTTP readiness URL).
	NATSURL string
	// Spawn and SpawnNATS are the command lines of the daemon and of a
	// separate nats-server; empty means not spawned.
	Spawn, SpawnNATS string
	// SpawnReady is the daemon's readiness URL ("" derives it from the
	// command line, "none" waits for nothing).
	SpawnReady string
	// LogDir gets one log file per child; empty means os.TempDir().
	LogDir string
	// RunID names the log files, so that runs side by side do not
	// share them.
	RunID string
	// Keep leaves the children running when they are stopped.
	Keep bool
	// ReadyTimeout bounds each child's wait for readiness.
	ReadyTimeout time.Duration
}

// Children are the processes a run spawned, by fault target
// (TargetDaemon, TargetNATS). A missing target was not spawned, and its
// faults go to the fault command instead.
type Children map[string]*child

// SpawnAll starts the configured children (the NATS server first, since
// the daemon cannot start without it), each waited on until ready. On
// error every child already started is stopped, so a failed start leaves
// no process behind.
func SpawnAll(ctx context.Context, cfg SpawnConfig) (Children, error) {
	kids := Children{}
	fail := func(err error) (Children, error) {
		kids.Stop()
		return nil, err
	}
	addr, err := natsAddr(cfg.NATSURL)
	if err != nil && (cfg.SpawnNATS != "" || cfg.Spawn != "") {
		return nil, err
	}
	if cfg.SpawnNATS != "" {
		c, err := newChild(TargetNATS, cfg.SpawnNATS, cfg.LogDir, cfg.RunID, cfg.Keep)
		if err != nil {
			return fail(err)
		}
		kids[TargetNATS] = c
		c.ready, c.readyDesc = tcpReady(addr), "tcp "+addr
		if _, err := c.start(); err != nil {
			return fail(fmt.Errorf("loadgen: %w", err))
		}
		if err := c.waitReady(ctx, cfg.ReadyTimeout); err != nil {
			return fail(fmt.Errorf("loadgen: %w", err))
		}
	}
	if cfg.Spawn != "" {
		c, err := newChild(TargetDaemon, cfg.Spawn, cfg.LogDir, cfg.RunID, cfg.Keep)
		if err != nil {
			return fail(err)
		}
		kids[TargetDaemon] = c
		switch u := cfg.SpawnReady; {
		case u == "none":
		case u != "":
			c.ready, c.readyDesc = httpReady(u), "GET "+u
		case daemonReadyURL(c.argv) != "":
			u = daemonReadyURL(c.argv)
			c.ready, c.readyDesc = httpReady(u), "GET "+u
		default:
			c.ready, c.readyDesc = tcpReady(addr), "tcp "+addr
		}
		if _, err := c.start(); err != nil {
			return fail(fmt.Errorf("loadgen: %w", err))
		}
		if err := c.waitReady(ctx, cfg.ReadyTimeout); err != nil {
			return fail(fmt.Errorf("loadgen: %w", err))
		}
	}
	return kids, nil
}

// Stop stops the children, the daemon before its NATS server (the other
// order would make the daemon's shutdown wait on a server that is gone):
// SIGTERM, then SIGKILL after 15 s. Stopping a stopped child is a no-op,
// so Stop may be deferred and called again.
// 15 s leaves a clean flashreturnd shutdown (drain, commit, close
// Badger) time to finish; a daemon that needs longer is taken as hung,
// and waiting on it would only hold the report back.
func (kids Children) Stop() {
	for _, name := range []string{TargetDaemon, TargetNATS} {
		if c := kids[name]; c != nil {
			c.stop(15 * time.Second)
		}
	}
}

// Report lists the children as reported, the NATS server first (the
// order it was started in), times relative to base; nil when none was
// spawned, so that a report without children has no processes field.
func (kids Children) Report(base time.Time) []Process {
	var out []Process
	for _, name := range []string{TargetNATS, TargetDaemon} {
		if c := kids[name]; c != nil {
			out = append(out, c.report(base))
		}
	}
	return out
}

// SpawnPartitions is the --partitions of a spawned flashreturnd command
// line, or 0 when it names none or the line does not parse (the caller
// then uses its own default).
// It exists so that the decision gaps are measured per partition with
// the daemon's own count: with a different count, decisions would be
// mapped to partitions the daemon does not have and the per-partition
// gaps would mix partitions.
func SpawnPartitions(command string) int {
	argv, err := SplitCommand(command)
	if err != nil {
		return 0
	}
	v, ok := flagValue(argv, "partitions")
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0
	}
	return n
}
