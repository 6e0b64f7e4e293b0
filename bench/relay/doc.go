// Command relay is the no-op relay that sets flashreturn's throughput
// ceiling: it stores inbound events the way flashreturnd may, consumes
// them per partition in adaptive batches, publishes one output per event
// to fr.out.relay.<kind>.<user> with a Nats-Msg-Id (asynchronously, awaited per
// batch) and acknowledges each batch with one AckAll. It decides nothing,
// keeps no state and writes no disk of its own, so whatever rate it
// sustains is what NATS and the stream layout allow; flashreturnd's rate
// divided by the relay's is the share the decision work costs.
//
// Layouts (--layout):
//
//   - shared: one stream FR_IN on fr.in.> whose subject transform
//     fr.in.*.* -> fr.p.{{partition(P,2)}}.{{wildcard(1)}}.{{wildcard(2)}}
//     tags each event with its user's partition, and one durable pull
//     consumer per partition filtered on fr.p.<p>.>.
//   - streams: one stream FR_IN_<p> per partition on fr.p.<p>.>, fed by
//     the same mapping installed as a server-level subject mapping of the
//     embedded server's global account (with --nats-url the server must
//     already carry that mapping).
//
// Batching: a partition's worker takes the first message waiting, then
// whatever else is already buffered, up to --batch: under light load a
// batch is one message, under heavy load it is full.
//
// It embeds a nats-server with JetStream (storing under --data-dir,
// listening on --listen) unless given --nats-url, creates FR_OUT, FR_DLQ
// and FR_MERCHANT like flashreturnd so loadgen can drive it unchanged,
// prints "relay ready ..." on stdout once consuming, and drains on SIGINT
// or SIGTERM. Measure it with
//
//	loadgen --mode throughput --expect outputs --events 1000000 --nats-url ...
//
// as bench/run.sh does.
//
// What the ratio leaves out, by design: the relay reads no state, so
// Badger's cost and the decision logic are both on the daemon's side of
// the ratio; and it publishes exactly one output per input, where the
// daemon publishes zero to several, so on event mixes with many effects
// the daemon is slowed by more publishes as well as by more work. Keep
// its settings (streams, batch, acks, Nats-Msg-Id) in step with the
// daemon's, or the ratio stops meaning anything; that is why main.go
// comments each of them.
package main
