// Package barrier defines the control events that travel in-band with the
// data between tasks — watermarks, checkpoint barriers and end-of-input — and,
// in a later step, the aligner: the small state machine a task with several
// inputs uses to hold back the inputs that already delivered barrier n until
// every input delivered it.
//
// Control events travel in the same ordered channel as the record batches of
// one sender, so a barrier or watermark never overtakes the records that were
// sent before it.
package barrier
