package model

import (
	"fmt"
	"time"

	"github.com/wharf-registry/wharf/config"
)

// Bytes formats n in binary units, as `wharf status` does: 0 B, 512 B,
// 1.5 KiB, 20.0 GiB.
func Bytes(n int64) string { return config.FormatBytes(n) }

// Percent formats a share between 0 and 1. A share that rounds to 0 or
// 100 without being exactly that says so (<1%, >99%): a cache that
// missed once in a thousand is not "100%".
func Percent(f float64) string {
	switch {
	case f <= 0:
		return "0%"
	case f >= 1:
		return "100%"
	case f < 0.005:
		return "<1%"
	case f > 0.995:
		return ">99%"
	}
	return fmt.Sprintf("%.0f%%", f*100)
}

// Duration formats an uptime or an age to the two largest units: 45s,
// 3m 12s, 2h 05m, 3d 4h.
func Duration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Truncate(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm %02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd %dh", int(d.Hours())/24, int(d.Hours())%24)
}
