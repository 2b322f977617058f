package bench

import (
	"math"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Percentiles summarises a latency distribution, in milliseconds.
type Percentiles struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
}

// percentiles of durations in nanoseconds (sorted in place), nearest rank.
func percentiles(ns []int64) Percentiles {
	if len(ns) == 0 {
		return Percentiles{}
	}
	slices.Sort(ns)
	rank := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(ns)))) - 1
		return ms(ns[max(0, min(i, len(ns)-1))])
	}
	var sum float64
	for _, v := range ns {
		sum += float64(v)
	}
	return Percentiles{
		Count: len(ns), P50: rank(0.50), P95: rank(0.95), P99: rank(0.99),
		Max: ms(ns[len(ns)-1]), Mean: math.Round(sum/float64(len(ns))/1e3) / 1e3,
	}
}

func ms(ns int64) float64 { return math.Round(float64(ns)/1e3) / 1e3 }

// Usage is the resources used during a phase.
type Usage struct {
	// WallSeconds is the phase's duration.
	WallSeconds float64 `json:"wall_s"`
	// CPUSeconds is this process's user+system CPU time (getrusage).
	CPUSeconds float64 `json:"process_cpu_s"`
	// CPUPercent is CPUSeconds over WallSeconds (100 = one core busy).
	CPUPercent float64 `json:"process_cpu_pct"`
	// MachineBusyPercent is the whole machine's non-idle CPU time (all
	// processes: databases, broker, this one) over the phase, 100 = every
	// core busy; 0 where /proc/stat is unavailable.
	MachineBusyPercent float64 `json:"machine_busy_pct"`
	// ServersCPUPercent is the CPU time of the local servers' processes
	// over the phase, by server ("postgres", "rabbitmq", "mariadb"), 100 =
	// one core busy; read from /proc/<pid>/stat, so it is absent where that
	// is not readable, counts every process of the server (other clients'
	// work included) and misses processes that exited during the phase.
	ServersCPUPercent map[string]float64 `json:"servers_cpu_pct,omitempty"`
	// PeakRSSMB is this process's largest resident set size seen during the
	// phase (sampled every 20 ms from /proc/self/statm; elsewhere the
	// getrusage high-water mark).
	PeakRSSMB float64 `json:"peak_rss_mb"`
	// StartRSSMB is the resident set size when the phase began.
	StartRSSMB float64 `json:"start_rss_mb"`
	// PeakHeapMB is the largest Go heap in use seen during the phase.
	PeakHeapMB float64 `json:"peak_heap_mb"`
}

// meter measures a phase's CPU, machine load and memory.
type meter struct {
	start     time.Time
	cpu0      time.Duration
	busy0     machineCPU
	servers0  map[int]serverTicks
	startRSS  int64
	peakRSS   atomic.Int64
	peakHeap  atomic.Int64
	stop      chan struct{}
	wg        sync.WaitGroup
	freshHeap bool
}

// startMeter begins measuring. With fresh, it first returns free memory to
// the OS, so the phase's RSS is not inflated by earlier phases' garbage.
func startMeter(fresh bool) *meter {
	if fresh {
		runtime.GC()
		debug.FreeOSMemory()
	}
	m := &meter{start: time.Now(), cpu0: processCPU(), busy0: readMachineCPU(), servers0: readServerCPU(), stop: make(chan struct{}), freshHeap: fresh}
	m.startRSS = currentRSS()
	m.peakRSS.Store(m.startRSS)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		n := 0
		for {
			if rss := currentRSS(); rss > m.peakRSS.Load() {
				m.peakRSS.Store(rss)
			}
			if n%10 == 0 { // ReadMemStats stops the world: every 200 ms
				runtime.ReadMemStats(&ms)
				if h := int64(ms.HeapInuse); h > m.peakHeap.Load() {
					m.peakHeap.Store(h)
				}
			}
			n++
			select {
			case <-m.stop:
				return
			case <-t.C:
			}
		}
	}()
	return m
}

func (m *meter) finish() Usage {
	close(m.stop)
	m.wg.Wait()
	wall := time.Since(m.start)
	cpu := processCPU() - m.cpu0
	u := Usage{
		WallSeconds: round3(wall.Seconds()),
		CPUSeconds:  round3(cpu.Seconds()),
		CPUPercent:  math.Round(100 * cpu.Seconds() / wall.Seconds()),
		PeakRSSMB:   mb(m.peakRSS.Load()),
		StartRSSMB:  mb(m.startRSS),
		PeakHeapMB:  mb(m.peakHeap.Load()),
	}
	u.ServersCPUPercent = serversPercent(m.servers0, readServerCPU(), wall)
	if b := readMachineCPU(); b.total > m.busy0.total {
		u.MachineBusyPercent = math.Round(100 * float64(b.busy-m.busy0.busy) / float64(b.total-m.busy0.total))
	}
	return u
}

// serverTicks is a server process's CPU time so far.
type serverTicks struct {
	server string
	ticks  int64
}

// serversPercent turns two readings of the servers' processes into each
// server's CPU share of the time between them (100 = one core). A process
// that started meanwhile counts from zero.
func serversPercent(before, after map[int]serverTicks, wall time.Duration) map[string]float64 {
	if after == nil || wall <= 0 {
		return nil
	}
	ticks := map[string]int64{}
	for pid, a := range after {
		b := before[pid]
		if b.server != a.server || b.ticks > a.ticks { // a new process under a reused pid
			b.ticks = 0
		}
		ticks[a.server] += a.ticks - b.ticks
	}
	out := make(map[string]float64, len(ticks))
	for server, t := range ticks {
		out[server] = math.Round(100 * float64(t) / userHZ / wall.Seconds())
	}
	return out
}

func mb(b int64) float64       { return math.Round(float64(b)/(1<<20)*10) / 10 }
func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// machineCPU is cumulative CPU time from /proc/stat, in ticks.
type machineCPU struct{ busy, total int64 }
