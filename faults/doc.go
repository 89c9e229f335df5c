// Package faults is the process-level fault suite: it runs real nats-server
// processes, the built forwarder and the built collector (cmd/collector), and
// breaks them while events flow.
//
//   - fleet: three forwarders share the durable consumer while 50,000 events
//     flow in waves, and one of them is killed with SIGKILL in every wave,
//     once a backlog shows the fleet busy, and restarted. Nothing may be
//     lost; duplicates must stay within the in-flight window of the killed
//     processes.
//   - kill-during-outage: the HEC answers 503, the route is paused and the
//     forwarder holding the undelivered events is killed; a new one must
//     deliver them all once the HEC is back. A local HEC answers within
//     milliseconds, so the fleet's kills rarely catch a request unanswered;
//     this case always does.
//   - nats-restart: the nats-server process is stopped (SIGTERM, later
//     SIGKILL) and restarted on the same store in the middle of the run.
//     Nothing may be lost.
//   - cluster: a three-node JetStream cluster with the audit stream at three
//     replicas; the node leading the forwarder's consumer is killed in the
//     middle of the run. Nothing may be lost and events published after the
//     kill must arrive.
//   - hec-hang: the HEC accepts requests and never answers. The forwarder's
//     request timeouts fire, its breaker opens and the route's consumer is
//     paused on the server; when the HEC answers again nothing is lost.
//
// Every event is published by the test with the audit package's publisher,
// so the test knows each EventId; the collector writes every event it
// accepted to a file, which the test reads. A case ends when every published
// event arrived and the consumer has nothing pending or unacknowledged, and
// then prints
//
//	case=<name> published=N delivered=N lost=N duplicates=N
//
// where delivered counts the distinct published events the collector
// accepted, lost the published events it never accepted and duplicates the
// acceptances beyond the first of each event. The line is logged and, when
// the environment variable FAULTS_REPORT names a file, appended to it (CI
// prints that file).
//
// TestMain builds nats-server (from the module's own dependency), the
// forwarder and the collector once. The forwarder and the collector are built
// with -race when the test binary is; nats-server never is, as its races are
// not this repository's and it would only slow the suite down. Everything
// listens on 127.0.0.1. Tests wait for conditions by polling with deadlines
// and kill every process they started when they end; a failing test logs the
// end of each process's output.
package faults
