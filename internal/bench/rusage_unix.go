//go:build unix

package bench

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// processCPU is this process's user plus system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// maxRSS is the process's peak resident set size so far, in bytes.
func maxRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	if runtime.GOOS == "darwin" || runtime.GOOS == "ios" {
		return int64(ru.Maxrss) // bytes there
	}
	return int64(ru.Maxrss) * 1024 // KiB on Linux and the BSDs
}

var pageSize = int64(os.Getpagesize())

// statm is /proc/self/statm, kept open: the meter reads it every 20 ms,
// and one pread costs far less than opening the file each time.
var statm struct {
	once sync.Once
	f    *os.File
	buf  [128]byte
	mu   sync.Mutex
}

// currentRSS is the resident set size now, from /proc/self/statm; where
// that does not exist, the getrusage high-water mark.
func currentRSS() int64 {
	statm.once.Do(func() { statm.f, _ = os.Open("/proc/self/statm") })
	if statm.f == nil {
		return maxRSS()
	}
	statm.mu.Lock()
	defer statm.mu.Unlock()
	n, err := statm.f.ReadAt(statm.buf[:], 0)
	if n == 0 && err != nil {
		return maxRSS()
	}
	f := bytes.Fields(statm.buf[:n])
	if len(f) < 2 {
		return maxRSS()
	}
	pages, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return maxRSS()
	}
	return pages * pageSize
}

// readMachineCPU sums the "cpu" line of /proc/stat; zero elsewhere.
func readMachineCPU() machineCPU {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineCPU{}
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 5 || string(f[0]) != "cpu" {
		return machineCPU{}
	}
	var m machineCPU
	// user nice system idle iowait irq softirq steal; guest time is
	// already counted in user and nice.
	for i, s := range f[1:min(len(f), 9)] {
		v, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil {
			return machineCPU{}
		}
		m.total += v
		if i != 3 && i != 4 { // idle, iowait
			m.busy += v
		}
	}
	return m
}

// serverNames maps the command names of local server processes to the
// server they belong to, for Usage.ServersCPUPercent.
var serverNames = map[string]string{
	"postgres":    "postgres",
	"beam.smp":    "rabbitmq",
	"beam":        "rabbitmq",
	"mariadbd":    "mariadb",
	"mysqld":      "mariadb",
	"nats-server": "nats",
}

// userHZ is the unit of the CPU times in /proc/<pid>/stat (USER_HZ, 100 on
// every Linux architecture's user interface).
const userHZ = 100

// readServerCPU returns the user+system CPU time so far of every local
// server process, by pid, in USER_HZ ticks, with the server's name; nil
// where /proc is not readable.
func readServerCPU() map[int]serverTicks {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	out := map[int]serverTicks{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || end < open {
			continue
		}
		server, ok := serverNames[string(b[open+1:end])]
		if !ok {
			continue
		}
		f := bytes.Fields(b[end+1:])
		if len(f) < 13 {
			continue
		}
		user, err1 := strconv.ParseInt(string(f[11]), 10, 64)
		sys, err2 := strconv.ParseInt(string(f[12]), 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		out[pid] = serverTicks{server: server, ticks: user + sys}
	}
	return out
}
