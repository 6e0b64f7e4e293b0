// Package stages times an event's way through a flashreturnd, stage by
// stage, so that an operator can tell which step a slow answer spent its
// time in: the histograms flashreturn_stage_<stage>_seconds.
//
// The stages, in the order an event passes them (see [Stage] for where
// each one starts and ends, and whether it is counted per event or per
// batch):
//
//	stored_pulled   JetStream's stored timestamp → the consumer handed the message to its worker   per event
//	pulled_applied  handed to the worker → its batch applied by the core, before the commit       per event
//	commit          the batch's Badger transaction, retries included                              per batch
//	publish_ack     outputs handed to the publisher → the worker saw them stored with their marker per batch
//
// The fifth stage issue 15 names, "ack → visible to a consumer", is not
// measured: FR_OUT stores an output before it acks it, so what is left
// after the ack is a consumer's own pull, which happens in another process.
// loadgen's request → decision figure, read at the consumer, covers it.
// Nothing here estimates it.
//
// # Invariants
//
//   - Observing allocates nothing: the histograms are registered once (New)
//     and [Events] reuses its buffer from batch to batch, so the worker's
//     hot path stays allocation-free.
//   - An event is counted once per apply that sticks: [Events] holds a
//     batch's per-event timings until the worker says the batch applied
//     and committed ([Events.Applied], when the batch is placed in
//     flight); an apply thrown away (a core panic re-applies the batch
//     without the poison event, a commit too big for one transaction
//     applies it again smaller) is dropped with [Events.Reset].
//   - The status page's mirror ([Histograms.Snapshot]) counts exactly
//     what the exported histograms count, in the same buckets: Observe
//     updates both, so a p99 on the page and histogram_quantile on the
//     dashboard differ only by their windows, never by their data.
//   - A negative duration (the NATS server's clock behind this process's,
//     when it runs elsewhere) is counted as 0, never dropped: the count of
//     every stage stays the number of events or batches that passed it.
//
// # Callers
//
// pipeline's partition workers, which own one [Events] each and share one
// [Histograms]. The /metrics endpoint exports the histograms, which the
// dashboard's Stages row (deploy/grafana) draws; pipeline's Status reads
// the mirror (Snapshot, Between) for /api/status and the status page,
// because a PrometheusHistogram cannot be read back in-process.
package stages
