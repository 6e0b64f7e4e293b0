package pipeline

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/flashreturn/flashreturn/internal/wire"
)

// Query routing in cluster mode. A daemon's Badger store is current only
// for the partitions it owns (runs a worker for); the copy it keeps of a
// partition it gave up is stale, and it has nothing at all of the others.
// So a query for user u (partition p = wire.Partition(u, P)) is answered:
//
//   - locally when p's worker runs here under a valid claim;
//   - else by forwarding it to the owner FR_OWNERS names, when that member
//     is live (its FR_MEMBERS key exists) and advertises an HTTP base URL
//     (memberRecord.HTTP, from Config.AdvertiseHTTP): its answer is relayed
//     as is (status, body, Content-Type, Retry-After);
//   - else 503 with a JSON error and Retry-After: the partition is being
//     handed over, its owner is gone (a takeover follows within the
//     lease), advertises no address, or did not answer within
//     queryForwardTimeout. Never from the local copy.
//
// Every answer carries ServedByHeader: the member whose state answered (or
// that answered 503). A forwarded request carries ForwardedHeader and is
// never forwarded again: a member that does not own the partition (any
// more) answers it 503, so two members with different views cannot bounce
// a request between them.

// Headers of the query API's routing in cluster mode.
const (
	// ServedByHeader names, on every query API answer in cluster mode, the
	// member that answered: the partition's owner, or the member that
	// answered 503.
	ServedByHeader = "Flashreturn-Served-By"
	// ForwardedHeader marks a query forwarded by another member (its value
	// is the forwarding member's ID; any non-empty value counts). Such a
	// query is answered from local state or 503, never forwarded again.
	ForwardedHeader = "Flashreturn-Forwarded"
)

const (
	// queryForwardTimeout bounds a forwarded query, connection to body.
	queryForwardTimeout = 2 * time.Second
	// queryRetryAfter is the Retry-After (seconds) of a 503 answer: a
	// release-and-claim takes well under a second; a takeover after a
	// crash up to a lease, which clients see as a few retries.
	queryRetryAfter = "1"
	// maxForwardedBody bounds the owner's answer read into memory.
	maxForwardedBody = 16 << 20
)

// DefaultAdvertiseHTTP returns the base URL a member advertises for the
// HTTP listen address listen when none is configured: "http://"+listen
// when listen names a concrete host and port, else "" (an unspecified host
// such as ":8080" or "0.0.0.0:8080" says nothing about how others reach
// this machine; port 0 is not known before binding; "off" disables HTTP).
func DefaultAdvertiseHTTP(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || host == "" || port == "" || port == "0" {
		return ""
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return ""
	}
	return "http://" + net.JoinHostPort(host, port)
}

// parseAdvertiseHTTP checks an advertised base URL (http or https, a host,
// an optional path prefix, no query) and returns it without a trailing
// slash.
func parseAdvertiseHTTP(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("want an http:// or https:// base URL such as http://10.0.0.5:8080")
	}
	return strings.TrimRight(s, "/"), nil
}

// validateAdvertiseHTTP is Config.Validate's check of AdvertiseHTTP.
func (c *Config) validateAdvertiseHTTP() error {
	if c.AdvertiseHTTP == "" {
		return nil
	}
	if c.HTTPAddr == "off" {
		return fmt.Errorf("pipeline: config: AdvertiseHTTP %q with HTTPAddr off: nothing would answer there", c.AdvertiseHTTP)
	}
	base, err := parseAdvertiseHTTP(c.AdvertiseHTTP)
	if err != nil {
		return fmt.Errorf("pipeline: config: AdvertiseHTTP %q: %w", c.AdvertiseHTTP, err)
	}
	c.AdvertiseHTTP = base
	return nil
}

// advertisedHTTP is the base URL this daemon puts in its member record:
// Config.AdvertiseHTTP, else derived from the bound listener (see
// DefaultAdvertiseHTTP), else "".
func (d *Daemon) advertisedHTTP() string {
	if d.cfg.AdvertiseHTTP != "" {
		return d.cfg.AdvertiseHTTP
	}
	return DefaultAdvertiseHTTP(d.HTTPAddr())
}

// memberBase is the base URL of a member record's HTTP field. A record
// written by an older daemon holds the bound host:port instead of a URL;
// it is used when its host is concrete.
func memberBase(s string) string {
	if s == "" {
		return ""
	}
	if !strings.Contains(s, "://") {
		return DefaultAdvertiseHTTP(s)
	}
	base, err := parseAdvertiseHTTP(s)
	if err != nil {
		return ""
	}
	return base
}

// queryRoute is where a query for one partition goes.
type queryRoute struct {
	local bool   // the worker runs here under a valid claim
	owner string // the member FR_OWNERS names ("" none)
	base  string // the owner's base URL, when the query can be forwarded
	why   string // why it cannot be answered, when neither
}

// route decides where a query for partition p goes.
func (c *cluster) route(p int) queryRoute {
	if s := c.slot(p); s != nil && s.running.Load() && !s.stopping.Load() && s.check() == nil {
		return queryRoute{local: true, owner: c.o.MemberID}
	}
	c.mu.Lock()
	e := c.view[p]
	rec, live := c.live[e.rec.Member]
	c.mu.Unlock()
	rt := queryRoute{owner: e.rec.Member}
	switch {
	case !e.ok || e.rec.Member == "":
		rt.why = fmt.Sprintf("partition %d has no owner at the moment (being handed over)", p)
	case e.rec.Member == c.o.MemberID:
		rt.why = fmt.Sprintf("partition %d is being restored or stopped on member %s", p, c.o.MemberID)
	case !live:
		rt.why = fmt.Sprintf("member %s, owner of partition %d, is gone; another member takes over within the lease", e.rec.Member, p)
	default:
		if rt.base = memberBase(rec.HTTP); rt.base == "" {
			rt.why = fmt.Sprintf("member %s, owner of partition %d, advertises no HTTP address (--advertise-http)", e.rec.Member, p)
		}
	}
	return rt
}

// queryError is the JSON body of a 503 answer of the query API.
type queryError struct {
	Error     string `json:"error"`
	Partition int    `json:"partition"`
	Owner     string `json:"owner,omitempty"`
	Member    string `json:"member"`
}

// routeQuery wraps a query handler that answers from local state: outside
// cluster mode it runs as is; in cluster mode it runs only for a
// partition owned here, and other queries are forwarded or answered 503
// (see the comment at the top of this file).
func (d *Daemon) routeQuery(local http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := d.cluster
		if c == nil {
			local(w, r)
			return
		}
		p := wire.Partition(r.PathValue("user"), d.cfg.Partitions)
		rt := c.route(p)
		switch {
		case rt.local:
			w.Header().Set(ServedByHeader, c.o.MemberID)
			local(w, r)
		case r.Header.Get(ForwardedHeader) != "":
			c.unavailable(w, p, rt.owner, fmt.Sprintf("partition %d is not owned by member %s, which got this query forwarded by %s; a forwarded query is not forwarded again",
				p, c.o.MemberID, r.Header.Get(ForwardedHeader)))
		case rt.base == "":
			c.unavailable(w, p, rt.owner, rt.why)
		default:
			c.forward(w, r, p, rt)
		}
	}
}

// unavailable answers 503 with a JSON error and Retry-After.
func (c *cluster) unavailable(w http.ResponseWriter, p int, owner, msg string) {
	c.m.queryUnavailable.Inc()
	h := w.Header()
	h.Set(ServedByHeader, c.o.MemberID)
	h.Set("Retry-After", queryRetryAfter)
	h.Set("Cache-Control", "no-store")
	writeJSONStatus(w, http.StatusServiceUnavailable, &queryError{Error: msg, Partition: p, Owner: owner, Member: c.o.MemberID})
}

// forward sends the query to the partition's owner and relays its answer;
// when the owner does not answer in time, the answer is 503.
func (c *cluster) forward(w http.ResponseWriter, r *http.Request, p int, rt queryRoute) {
	ctx, cancel := context.WithTimeout(r.Context(), queryForwardTimeout)
	defer cancel()
	target := rt.base + r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	fail := func(err error) {
		c.m.forwardErrors.Inc()
		c.log.Debug("query forward failed", "partition", p, "owner", rt.owner, "url", target, "err", err)
		c.unavailable(w, p, rt.owner, fmt.Sprintf("member %s, owner of partition %d, did not answer at %s: %v", rt.owner, p, rt.base, err))
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, target, nil)
	if err != nil {
		fail(err)
		return
	}
	req.Header.Set(ForwardedHeader, c.o.MemberID)
	if a := r.Header.Get("Accept"); a != "" {
		req.Header.Set("Accept", a)
	}
	resp, err := c.httpc.Do(req)
	if err != nil {
		fail(err)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxForwardedBody+1))
	if err == nil && len(body) > maxForwardedBody {
		err = fmt.Errorf("answer larger than %d bytes", maxForwardedBody)
	}
	if err != nil {
		fail(err)
		return
	}
	c.m.forwards.Inc()
	h := w.Header()
	for _, k := range []string{"Content-Type", "Retry-After", "Cache-Control", "X-Content-Type-Options"} {
		if v := resp.Header.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	servedBy := resp.Header.Get(ServedByHeader)
	if servedBy == "" {
		servedBy = rt.owner // an owner that does not name itself (an older daemon)
	}
	h.Set(ServedByHeader, servedBy)
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
}

// newQueryClient is the client of forwarded queries: direct connections
// to the members' advertised addresses (no proxy from the environment:
// members talk to each other inside the cluster), redirects not followed.
func newQueryClient() *http.Client {
	return &http.Client{
		Timeout: queryForwardTimeout,
		Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: queryForwardTimeout, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost:   16,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: queryForwardTimeout,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// serveCluster answers GET /v1/cluster: ClusterStatus in cluster mode;
// outside it, a single daemon's view (mode "single", no member, every
// partition owned locally), so that tools need not special-case it.
func (d *Daemon) serveCluster(w http.ResponseWriter, _ *http.Request) {
	st, ok := d.ClusterStatus()
	if !ok {
		st = d.singleStatus()
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, &st)
}

// singleStatus is the ClusterStatus of a daemon outside cluster mode.
func (d *Daemon) singleStatus() ClusterStatus {
	st := ClusterStatus{Mode: "single", Partitions: d.cfg.Partitions, HTTP: d.advertisedHTTP(),
		Members: []string{}, Directory: []MemberInfo{}, Owned: []OwnedPartition{}}
	select {
	case <-d.started: // d.workers is written before started closes
	default:
		return st
	}
	for p, w := range d.workers {
		st.Owned = append(st.Owned, OwnedPartition{Partition: p, Running: true, Ready: w.ready.Load(), Restore: RestoreInfo{Source: "local"}})
	}
	return st
}
