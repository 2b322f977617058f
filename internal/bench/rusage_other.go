//go:build !unix

package bench

import (
	"runtime"
	"time"
)

func processCPU() time.Duration { return 0 }

func maxRSS() int64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.Sys)
}

func currentRSS() int64 { return maxRSS() }

func readMachineCPU() machineCPU { return machineCPU{} }

const userHZ = 100

func readServerCPU() map[int]serverTicks { return nil }
