package core

// After review: resolutions and deadlines (shared/domain.md). A request in
// review is resolved exactly once: by the first person's answer
// (review.approved / review.rejected), or by the review deadline (approved
// by timeout) when it failed fast-track rules only. An approved request
// whose goods never come back is closed by its return deadline.

// MaxNoteBytes bounds the note kept from a review answer; a longer note is
// cut at a UTF-8 boundary at or below it (the query API shows it; the
// state must stay small).
const MaxNoteBytes = 512

// answered handles review.approved and review.rejected of a known
// request: only the first answer to a request in review counts; any other
// answer changes nothing and emits nothing.
func answered(u *User, ev *Event, env *Env, out []Effect) []Effect {
	r := u.Request(ev.RequestID)
	if !r.InReview() {
		return out
	}
	if ev.Note != "" {
		r.Note = cutNote(ev.Note)
		u.own(&r.Note)
	}
	if ev.Type == EventReviewRejected {
		r.Resolution, r.ResolvedBy, r.ResolvedAt = ResolutionRejected, ev.By, ev.At
		u.end(r, StatusRejected, ev.At)
		out, _ = resolution(out, u, r)
		return out
	}
	return approveReviewed(u, r, ev.By, ev.At, env, out)
}

// approveReviewed resolves a request in review as approved by who at time
// at: a person's answer, or its review deadline (ActorTimeout). It is not
// a fast track: nothing is advanced. The per-order ceiling applies: an
// approval that would pass it is resolved rejected with
// amount_exceeds_paid instead. Otherwise the resolution is followed by
// what the approval does, by kind:
//
//   - return_refund: the merchant's return address, a pickup when the
//     request asked for one (its window from at), and the refund when the
//     inspection comes back ok (trigger inspection, not an advance);
//   - refund_only: the refund at once (trigger approval, not an
//     advance); the request is finished;
//   - exchange: the return address and a pickup (replace false: the new
//     item is sent once the old one is back); no money moves.
//
// An inspection that came back while the request was in review settles
// it at once: ok pays the refund, bad pays nothing (its trust feedback was
// sent when it came).
func approveReviewed(u *User, r *Request, who Actor, at int64, env *Env, out []Effect) []Effect {
	r.ResolvedBy, r.ResolvedAt = who, at
	o := u.Order(r.OrderID)
	if o == nil {
		// Cannot happen (an order is kept while a request refers to it);
		// a request with no order can never be approved.
		r.Resolution, r.ResolveCodes = ResolutionRejected, CodeSet(0).With(CodeOrderUnknown)
		u.end(r, StatusRejected, at)
		out, _ = resolution(out, u, r)
		return out
	}
	held := o.ReservedFen + o.RefundedFen
	if !fits(held, r.AmountFen, o.PaidFen) {
		r.Resolution, r.ResolveCodes = ResolutionRejected, CodeSet(0).With(CodeAmountExceedsPaid)
		u.end(r, StatusRejected, at)
		out, e := resolution(out, u, r)
		c := checker{tr: &e.Trace}
		c.add(Check{Code: CodeAmountExceedsPaid, Got: r.AmountFen, Limit: o.PaidFen, Held: held})
		return out
	}
	r.Resolution = ResolutionApproved
	trig := TriggerInspection
	if !r.Kind.NeedsReturnAddress() {
		trig = TriggerApproval
	} else if r.Kind == KindExchange {
		trig = TriggerNone
	}
	u.reserve(r, o, trig, false, at)
	out, e := resolution(out, u, r)
	c := checker{tr: &e.Trace}
	c.add(Check{Code: CodeAmountExceedsPaid, Pass: true, Got: r.AmountFen, Limit: o.PaidFen, Held: held})
	if r.Kind.NeedsReturnAddress() {
		if m := merchantOf(env, o); m != nil && len(m.ReturnAddresses) > 0 {
			e.ReturnAddress = m.ReturnAddresses[0]
		}
	}
	// e is not used past this point: the appends below may move out.
	switch {
	case trig == TriggerApproval:
		return sendRefund(u, r, TriggerApproval, at, out)
	case r.Inspection != OutcomeNone:
		return settleInspection(u, r, at, out)
	case r.PickupAsked || r.Kind == KindExchange:
		out = schedulePickup(u, r, o, false, at, env, out)
	}
	return out
}

// closeNotReturned closes an approved request whose return deadline
// passed at time at with nothing sent back: a resolution closed by
// timeout; what it promised is released; what it advanced (money or
// goods) is clawed back with outcome not_returned, with trust feedback
// and a trust mark ("claimed a return that never happened").
func closeNotReturned(u *User, r *Request, at int64, out []Effect) []Effect {
	// The request keeps its review resolution, if it had one (approved by
	// a person or a timeout): the close is a second, distinct output
	// ([Effect.ResolutionID]); the request's status says it was closed.
	out, e := resolution(out, u, r)
	e.Resolution, e.By, e.At, e.Reasons, e.Note = ResolutionClosed, ActorTimeout, at, 0, ""
	if r.Advanced() {
		out = clawback(u, r, OutcomeNotReturned, at, out)
		out = trustFeedback(u, r, OutcomeNotReturned, out)
		u.TrustMarks = append(u.TrustMarks, at)
	}
	u.end(r, StatusClosed, at)
	return out
}

// resolution appends the resolution effect of r to out (see emit; the
// return address and the trace are the caller's).
func resolution(out []Effect, u *User, r *Request) ([]Effect, *Effect) {
	out, e := emit(out, EffectResolution, u, r)
	e.Resolution, e.By, e.At, e.Reasons, e.Note = r.Resolution, r.ResolvedBy, r.ResolvedAt, r.ResolveCodes, r.Note
	return out, e
}

// cutNote returns s cut to at most MaxNoteBytes at a UTF-8 boundary.
func cutNote(s string) string {
	if len(s) <= MaxNoteBytes {
		return s
	}
	n := MaxNoteBytes
	for n > 0 && s[n]&0xc0 == 0x80 {
		n-- // s[n] continues a multi-byte character: cut before it
	}
	return s[:n]
}
