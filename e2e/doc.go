// Package e2e runs the built forwarder binary as real processes against an
// in-process JetStream server and in-process HEC collectors, and checks what
// an operator relies on: nothing is lost when a process is killed, a fleet
// shares one consumer without duplicates, SIGTERM returns unfinished work to
// the stream in time, bad settings exit 2 with a message that names them and
// never echo the token, and the health endpoints answer.
//
// TestMain builds ./cmd/forwarder once (without -race, whatever the test
// binary uses); a build failure fails the package. Every test waits by polling
// for a condition, never by sleeping a fixed time, and kills the processes it
// started when it ends. A failing test logs each process's stdout and stderr.
package e2e
