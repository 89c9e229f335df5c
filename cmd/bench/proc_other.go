//go:build !linux

package main

import (
	"os"
	"syscall"
	"time"
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

// peakRSS is unknown without /proc; the rusage after exit is used instead.
func peakRSS(int) int64 { return 0 }

// rusageMaxRSS is left unknown off Linux, where ru_maxrss units differ.
func rusageMaxRSS(*os.ProcessState) int64 { return 0 }

// selfCPU is left unknown off Linux.
func selfCPU() time.Duration { return 0 }
