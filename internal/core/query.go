package core

// What the query API and the status page show of a shopper and a request.
// These are rules, not formatting: which stage a request is in, whether a
// shopper is flagged, what a request has sent and what it still holds all
// follow from the state the same way decisions read it, so they live here
// next to Apply; a caller (pipeline's HTTP API) only renders the values.
// Everything here is read-only and pure; functions that return slices
// allocate (query path, never the hot path).

// Stage returns where the request stands in the after-sales flow, as the
// query API reports it: review until a person or a deadline resolves it,
// processing while approved and open, feedback once it ended.
func (r *Request) Stage() Stage {
	switch {
	case r.InReview():
		return StageReview
	case r.Status == StatusOpen:
		return StageProcessing
	}
	return StageFeedback
}

// EffectRef names one output a request produced, for the query API.
type EffectRef struct {
	Kind EffectKind // which output
	// ID is its downstream idempotency key where the contract has one
	// (refund_id, pickup_id, resolution_id), else its Nats-Msg-Id.
	ID string
}

// Effects lists the outputs the request has produced so far: decision,
// resolution (the answer to its review), the close by its return deadline,
// refund, pickup, compensation, clawback, trust. userID is the request's
// shopper. It allocates (query API, not the hot path).
func (r *Request) Effects(userID string) []EffectRef {
	_, closed := r.Closed()
	var refs []EffectRef
	for _, s := range [...]struct {
		k    EffectKind
		res  Resolution // ResolutionClosed: the close, whose IDs end in ".closed"
		sent bool
	}{
		{EffectDecision, 0, true}, {EffectResolution, 0, r.Resolution != ResolutionNone},
		{EffectResolution, ResolutionClosed, closed}, {EffectRefund, 0, r.RefundSent},
		{EffectPickup, 0, r.Pickup}, {EffectCompensation, 0, r.CompensationSent},
		{EffectClawback, 0, r.ClawbackSent}, {EffectTrust, 0, r.TrustSent},
	} {
		if !s.sent {
			continue
		}
		e := Effect{Kind: s.k, UserID: userID, RequestID: r.ID, Resolution: s.res}
		id := e.MsgID()
		switch s.k {
		case EffectRefund:
			id = e.RefundID()
		case EffectPickup:
			id = e.PickupID()
		case EffectResolution:
			id = e.ResolutionID()
		}
		refs = append(refs, EffectRef{s.k, id})
	}
	return refs
}

// TrustFlagged reports whether the shopper fails the trust rule of p at
// event time at: a trust mark (bad inspection after an advance, or a
// not_returned close) in (at - p.TrustWindow, at], or a window that
// reaches back past pruned marks (the rule fails safe).
func (u *User) TrustFlagged(at int64, p *Policy) bool {
	bad, whole := inWindow(u.TrustMarks, u.TrustPrunedTo, at-int64(p.TrustWindow), at)
	return !whole || bad > 0
}

// Velocity returns the requests the velocity rule of p counts as of the
// shopper's last event: those decided in (MaxAt - p.VelocityWindow,
// MaxAt].
func (u *User) Velocity(p *Policy) int {
	return int(countIn(u.RecentRequests, u.MaxAt-int64(p.VelocityWindow), u.MaxAt))
}

// Trust returns what the query API shows of the trust rule as of the
// shopper's last event (u.MaxAt) under policy p, normally the policy in
// force. marks counts the trust marks later than MaxAt - p.TrustWindow;
// flagged is [User.TrustFlagged] at MaxAt, the test a decision at that
// instant would make. They can disagree on purpose: a return deadline
// fired by partition time past the shopper's last event leaves a mark
// dated after MaxAt, which counts in marks at once (it happened) but
// flags only from the shopper's next event on (the decision rule counts
// marks in (at - TrustWindow, at]).
func (u *User) Trust(p *Policy) (marks int, flagged bool) {
	cutoff := u.MaxAt - int64(p.TrustWindow)
	for _, t := range u.TrustMarks {
		if t > cutoff {
			marks++
		}
	}
	return marks, u.TrustFlagged(u.MaxAt, p)
}

// Exposure is what the exposure cap compares before adding a new
// request's amount: advances outstanding plus advances promised.
func (u *User) Exposure() int64 { return u.OutstandingFen + u.PromisedFen }

// OpenRequests appends the IDs of the shopper's open requests to dst, in
// arrival order, and returns it.
func (u *User) OpenRequests(dst []string) []string {
	for i := range u.Requests {
		if u.Requests[i].Open() {
			dst = append(dst, u.Requests[i].ID)
		}
	}
	return dst
}

// RefundState is the money side of an approved request: what releases
// its refund and whether that is an advance, whether the amount is still
// reserved on the order, and whether (and when) it was paid.
type RefundState struct {
	// Trigger and Advance are the approval's terms until the refund is
	// sent, then what actually paid it: the two differ when an ok
	// inspection pays a refund the terms said tracking would (an
	// inspection refund is never an advance).
	Trigger Trigger
	Advance bool
	// Reserved: the amount counts against the order's ceiling as promised
	// and not sent.
	Reserved bool
	Sent     bool
	SentAt   int64 // event time it was sent, Unix ns; 0 while not sent
}

// RefundState returns the request's refund, and ok false when there is
// none to show: the request was not approved, or its terms pay nothing
// (an exchange, a kind the policy refunds with trigger none) and nothing
// was sent.
func (r *Request) RefundState() (s RefundState, ok bool) {
	if !r.Approved() || (r.PayTrigger == TriggerNone && !r.RefundSent) {
		return s, false
	}
	s = RefundState{Trigger: r.PayTrigger, Advance: r.PayAdvance, Reserved: r.Reserved, Sent: r.RefundSent}
	if r.RefundSent {
		s.Trigger, s.Advance, s.SentAt = r.RefundTrigger, r.RefundAdvance, r.RefundAt
	}
	return s, true
}

// PickupState is a request's courier pickup as the query API shows it.
type PickupState struct {
	WindowStart, WindowEnd int64 // Unix ns
	// Done: the courier came, by pickup.done, or a tracking number or
	// pickup dated inside the window (either sign stops the
	// compensation timer, so both count as done).
	Done        bool
	Compensated bool // the missed-window compensation was sent
}

// PickupState returns the request's pickup; ok is false when it never
// got a pickup window.
func (r *Request) PickupState() (s PickupState, ok bool) {
	if r.WindowEnd == 0 {
		return s, false
	}
	return PickupState{r.WindowStart, r.WindowEnd, r.PickupDone || r.CourierOnTime, r.CompensationSent}, true
}

// Closed returns when the request was closed by its return deadline
// (the goods never came back); ok is false for any other request. Such a
// close is always [ResolutionClosed] by [ActorTimeout], a second
// resolution beside a review's answer, so only its time is state.
func (r *Request) Closed() (at int64, ok bool) {
	if r.Status != StatusClosed {
		return 0, false
	}
	return r.ClosedAt, true
}
