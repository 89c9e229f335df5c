//go:build race

package faults

// raceEnabled: the test binary runs under the race detector, so the
// forwarder and the collector are built with it too.
const raceEnabled = true
