package cli

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressFlag is a command's --progress: shown on a terminal by default,
// forced on or off when given.
type progressFlag struct{ on bool }

func (p *progressFlag) add(cmd *cobra.Command) {
	cmd.Flags().BoolVarP(&p.on, "progress", "p", false, "show progress with rate and ETA on stderr (default: when stderr is a terminal; --progress=false turns it off)")
}

// reporter returns the progress reporter for a session, nil when off.
func (p *progressFlag) reporter(cmd *cobra.Command, s *session, label, unit string) *progress {
	tty := isTerminal(s.env.Err)
	on := tty
	if cmd.Flags().Changed("progress") {
		on = p.on
	}
	if !on {
		return nil
	}
	return newProgress(s.env.Err, tty, label, unit, time.Now)
}

// progress draws a one-line progress report with rate and ETA on stderr: a
// line redrawn in place (carriage return) on a terminal, at most every
// 100 ms; a new line every 2 s otherwise. A nil *progress does nothing.
type progress struct {
	w           io.Writer
	tty         bool
	label, unit string
	now         func() time.Time
	start       time.Time
	next        time.Time
	every       time.Duration
	width       int // of the last line drawn on a terminal
}

func newProgress(w io.Writer, tty bool, label, unit string, now func() time.Time) *progress {
	p := &progress{w: w, tty: tty, label: label, unit: unit, now: now, start: now(), every: 2 * time.Second}
	if tty {
		p.every = 100 * time.Millisecond
	}
	p.next = p.start.Add(p.every)
	return p
}

// update reports done units out of total (total <= 0: unknown).
func (p *progress) update(done, total int64) {
	frac := -1.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	p.updateFrac(done, total, frac)
}

// updateFrac reports done units, with frac the fraction of the work done
// (from 0 to 1; negative when unknown), which gives the ETA.
func (p *progress) updateFrac(done, total int64, frac float64) {
	if p == nil {
		return
	}
	now := p.now()
	if now.Before(p.next) {
		return
	}
	p.next = now.Add(p.every)
	p.draw(p.line(done, total, frac, now, false))
}

// finish draws the final line and ends it.
func (p *progress) finish(done, total int64) {
	if p == nil {
		return
	}
	p.draw(p.line(done, total, 1, p.now(), true))
	if p.tty {
		fmt.Fprint(p.w, "\n")
	}
}

func (p *progress) draw(line string) {
	if !p.tty {
		fmt.Fprintln(p.w, line)
		return
	}
	pad := ""
	if n := p.width - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	p.width = len(line)
	fmt.Fprint(p.w, "\r"+line+pad)
}

func (p *progress) line(done, total int64, frac float64, now time.Time, final bool) string {
	elapsed := now.Sub(p.start)
	var b strings.Builder
	b.WriteString(p.label)
	b.WriteString(": ")
	b.WriteString(groupDigits(done))
	if total > 0 {
		b.WriteString("/" + groupDigits(total))
	}
	b.WriteString(" " + p.unit)
	if total > 0 && !final {
		fmt.Fprintf(&b, " (%.1f%%)", 100*frac)
	}
	if secs := elapsed.Seconds(); secs > 0 {
		fmt.Fprintf(&b, ", %s %s/s", groupDigits(int64(float64(done)/secs)), p.unit)
	}
	switch {
	case final:
		fmt.Fprintf(&b, ", done in %s", roundDuration(elapsed))
	case frac > 0 && frac < 1:
		eta := time.Duration(float64(elapsed) * (1 - frac) / frac)
		fmt.Fprintf(&b, ", ETA %s", roundDuration(eta))
	}
	return b.String()
}

// roundDuration rounds for display: 1.2s, 14s, 3m5s.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond)
	case d < 10*time.Second:
		return d.Round(100 * time.Millisecond)
	default:
		return d.Round(time.Second)
	}
}

// groupDigits writes n with thousands separators: 1,234,567.
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
