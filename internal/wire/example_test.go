package wire_test

import (
	"fmt"

	"github.com/flashreturn/flashreturn/internal/core"
	"github.com/flashreturn/flashreturn/internal/wire"
)

// ExampleDecode decodes a return request as the pipeline does: the subject
// gives the kind and user tokens, Decode validates the payload against
// them, and a rejection carries the DLQ reason and the subject it goes to.
func ExampleDecode() {
	_, kind, user, _ := wire.ParseSubject("fr.in.return.u42")
	payload := []byte(`{"type":"return.requested","event_id":"e7","at":"2026-11-11T00:00:03.250+08:00",
		"user_id":"u42","request_id":"r1","order_id":"o9","kind":"return_refund","reason":"dislike","pickup":true}`)

	var ev core.Event
	if err := wire.Decode(kind, user, payload, &ev); err != nil {
		fmt.Println("rejected:", err)
		return
	}
	fmt.Println(ev.Type, ev.UserID, ev.RequestID, ev.OrderID, ev.Kind, ev.Reason, ev.Pickup, ev.HasAmount)

	// The same request published under another shopper's subject is dead-lettered.
	err := wire.Decode(kind, "u43", payload, &ev)
	fmt.Println(wire.DLQSubject(wire.ReasonOf(err)))
	fmt.Println(err)

	// Output:
	// return.requested u42 r1 o9 return_refund dislike true false
	// fr.dlq.subject_mismatch
	// field "user_id" is "u42" but the subject's user token is "u43"
}
