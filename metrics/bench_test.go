package metrics

import (
	"testing"
	"time"
)

// BenchmarkWarmRequestInstruments is the metrics work of one cache-hit
// blob GET: the request, the cache result and the bytes served.
func BenchmarkWarmRequestInstruments(b *testing.B) {
	m := New("bench")
	m.InitProxy("hub")
	b.ReportAllocs()
	for range b.N {
		m.ObserveRequest("blob", "GET", 200, 300*time.Microsecond)
		m.CacheResult("hub", "blob", "hit")
		m.ServedBytes("hit", 16<<10)
	}
}
