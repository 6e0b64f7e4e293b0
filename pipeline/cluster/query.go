package cluster

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/bytedance/sonic"

	"github.com/flashreturn/flashreturn/internal/ownership"
	"github.com/flashreturn/flashreturn/internal/wire"
	"github.com/flashreturn/flashreturn/pipeline/streams"
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

// The forwarding bounds: a forwarded query is an interactive request (an
// operator's, a support tool's), so a slow owner is answered 503 quickly
// rather than holding the caller.
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

// ParseAdvertiseHTTP checks an advertised base URL (http or https, a host,
// an optional path prefix, no query) and returns it without a trailing
// slash.
func ParseAdvertiseHTTP(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("want an http:// or https:// base URL such as http://10.0.0.5:8080")
	}
	return strings.TrimRight(s, "/"), nil
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
	base, err := ParseAdvertiseHTTP(s)
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
func (c *Cluster) route(p int) queryRoute {
	c.mu.Lock()
	now := c.now()
	si, claimed := c.sm.Slot(p)
	local := claimed && si.Phase == ownership.Running && c.sm.Check(p, si.Epoch, now) == ""
	e := c.sm.Owner(p)
	rec, live := c.live[e.Member]
	c.mu.Unlock()
	if local {
		return queryRoute{local: true, owner: c.o.MemberID}
	}
	rt := queryRoute{owner: e.Member}
	switch {
	case !e.OK || e.Member == "":
		rt.why = fmt.Sprintf("partition %d has no owner at the moment (being handed over)", p)
	case e.Member == c.o.MemberID:
		rt.why = fmt.Sprintf("partition %d is being restored or stopped on member %s", p, c.o.MemberID)
	case !live:
		rt.why = fmt.Sprintf("member %s, owner of partition %d, is gone; another member takes over within the lease", e.Member, p)
	default:
		if rt.base = memberBase(rec.HTTP); rt.base == "" {
			rt.why = fmt.Sprintf("member %s, owner of partition %d, advertises no HTTP address (--advertise-http)", e.Member, p)
		}
	}
	return rt
}

// QueryError is the JSON body of a 503 answer of the query API.
type QueryError struct {
	Error     string `json:"error"`
	Partition int    `json:"partition"`
	Owner     string `json:"owner,omitempty"`
	Member    string `json:"member"`
}

// RouteQuery wraps a query handler that answers from local state (its
// route has a {user} path value): it runs only for a partition owned
// here, and other queries are forwarded or answered 503 (see the comment
// at the top of this file). Outside cluster mode the daemon has no
// Cluster and the query API serves local directly.
func (c *Cluster) RouteQuery(local http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := wire.Partition(r.PathValue("user"), c.parts)
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
func (c *Cluster) unavailable(w http.ResponseWriter, p int, owner, msg string) {
	c.m.queryUnavailable.Inc()
	h := w.Header()
	h.Set(ServedByHeader, c.o.MemberID)
	h.Set("Retry-After", queryRetryAfter)
	h.Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusServiceUnavailable, &QueryError{Error: msg, Partition: p, Owner: owner, Member: c.o.MemberID})
}

// forward sends the query to the partition's owner and relays its answer;
// when the owner does not answer in time, the answer is 503.
func (c *Cluster) forward(w http.ResponseWriter, r *http.Request, p int, rt queryRoute) {
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

// Status is a daemon's view of the cluster, the answer of
// GET /v1/cluster. Outside cluster mode that route answers Mode "single",
// no member, no lease, and every partition in Owned ([SingleStatus]).
type Status struct {
	// Mode is "cluster" or "single".
	Mode string `json:"mode"`
	// Member is this daemon's member ID ("" outside cluster mode).
	Member string `json:"member"`
	// HTTP is the base URL this daemon advertises to the others.
	HTTP string `json:"http,omitempty"`
	// Partitions is P.
	Partitions            int     `json:"partitions"`
	LeaseValid            bool    `json:"lease_valid"`
	LeaseRemainingSeconds float64 `json:"lease_remaining_seconds"`
	// Members are the IDs of the live members (FR_MEMBERS keys), sorted.
	Members []string `json:"members"`
	// Directory describes each live member as its record says.
	Directory []MemberInfo `json:"directory"`
	// Owners is the owner of each partition (index) as FR_OWNERS said when
	// this daemon last saw it; "" released or never claimed. Omitted
	// outside cluster mode.
	Owners []string `json:"owners,omitempty"`
	// Owned are the partitions this daemon has claimed.
	Owned []OwnedPartition `json:"owned"`
	// Durability is what FR_IN and FR_OUT survive: replicas, storage and
	// the server's fsync (set by the HTTP API from the daemon; omitted
	// before the streams are set up).
	Durability *streams.Durability `json:"durability,omitempty"`
}

// MemberInfo is one live member as its FR_MEMBERS record describes it.
type MemberInfo struct {
	Member string `json:"member"`
	// HTTP is the member's advertised query API base URL ("" none).
	HTTP string `json:"http,omitempty"`
	// Leaving: the member is shutting down and is no longer a target.
	Leaving bool `json:"leaving,omitempty"`
}

// OwnedPartition is one partition claimed by this daemon.
type OwnedPartition struct {
	Partition int         `json:"partition"`
	Epoch     uint64      `json:"epoch"`
	Running   bool        `json:"running"`
	Ready     bool        `json:"ready"`
	Snapshot  string      `json:"snapshot,omitempty"`
	Restore   RestoreInfo `json:"restore"`
}

// Status returns the cluster view. Safe for concurrent use.
func (c *Cluster) Status() (st Status) {
	st.Mode, st.Member, st.HTTP, st.Partitions = "cluster", c.o.MemberID, c.h.AdvertisedHTTP(), c.parts
	var remaining time.Duration
	if st.LeaseValid, remaining = c.lease(); st.LeaseValid {
		st.LeaseRemainingSeconds = remaining.Seconds()
	}
	st.Members, st.Directory, st.Owned = []string{}, []MemberInfo{}, []OwnedPartition{}
	st.Owners = make([]string, c.parts)
	c.mu.Lock()
	for id, r := range c.live {
		st.Members = append(st.Members, id)
		st.Directory = append(st.Directory, MemberInfo{Member: id, HTTP: memberBase(r.HTTP), Leaving: r.Leaving})
	}
	for p := range st.Owners {
		if e := c.sm.Owner(p); e.OK {
			st.Owners[p] = e.Member
		}
	}
	slots := c.sm.Slots()
	io := make(map[int]*slot, len(c.slots))
	for p, s := range c.slots {
		io[p] = s
	}
	c.mu.Unlock()
	slices.Sort(st.Members)
	slices.SortFunc(st.Directory, func(a, b MemberInfo) int { return cmp.Compare(a.Member, b.Member) })
	for _, si := range slots {
		op := OwnedPartition{Partition: si.P, Epoch: si.Epoch, Running: si.Phase == ownership.Running, Ready: c.h.Ready(si.P), Snapshot: si.Record.Snapshot}
		if s := io[si.P]; s != nil && s.epoch == si.Epoch {
			if r := s.restore.Load(); r != nil {
				op.Restore = *r
			}
		}
		st.Owned = append(st.Owned, op)
	}
	return st
}

// SingleStatus is the Status of a daemon outside cluster mode, so that
// tools need not special-case it: mode "single", no member, every
// partition owned and running locally. ready is nil before the daemon
// has started its workers (then no partition is listed), else reports
// partition p's readiness.
func SingleStatus(partitions int, http string, ready func(p int) bool) Status {
	st := Status{Mode: "single", Partitions: partitions, HTTP: http,
		Members: []string{}, Directory: []MemberInfo{}, Owned: []OwnedPartition{}}
	if ready == nil {
		return st
	}
	for p := range partitions {
		st.Owned = append(st.Owned, OwnedPartition{Partition: p, Running: true, Ready: ready(p), Restore: RestoreInfo{Source: "local"}})
	}
	return st
}

// WriteJSON answers code with v encoded as JSON (sonic, as the rest of
// the query API, so that forwarded and local answers encode alike).
func WriteJSON(w http.ResponseWriter, code int, v any) {
	b, err := sonic.Marshal(v)
	if err != nil {
		http.Error(w, "encode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}
