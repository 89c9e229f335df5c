//go:build !race

package huntress

const raceEnabled = false
