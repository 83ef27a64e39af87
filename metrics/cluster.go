package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Cluster counts what a replica does with the others (cluster mode): a
// single box never registers these series.
type Cluster struct {
	sources   *prometheus.CounterVec
	peer      prometheus.Counter
	takeovers prometheus.Counter
	forwards  *prometheus.CounterVec
	replicas  prometheus.Gauge
}

type clusterOnce struct {
	once sync.Once
	c    *Cluster
}

// Fill sources and forward results, as Cluster's methods take them.
var (
	FillSources    = []string{"upstream", "peer", "store"}
	ForwardResults = []string{"forwarded", "replica_gone", "unreachable"}
)

// Cluster registers the cluster series on first use and returns them;
// nil on a nil Metrics.
func (m *Metrics) Cluster() *Cluster {
	if m == nil {
		return nil
	}
	m.cluster.once.Do(func() {
		c := &Cluster{
			sources: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "wharf_cluster_fill_streams_total",
				Help: "Streams this replica's fills read, by source: upstream (this replica holds the fill lease), peer (the replica filling the blob), store (another replica already committed it).",
			}, []string{"source"}),
			peer: prometheus.NewCounter(prometheus.CounterOpts{
				Name: "wharf_cluster_peer_bytes_total",
				Help: "Blob bytes received from other replicas' fills instead of from the upstream.",
			}),
			takeovers: prometheus.NewCounter(prometheus.CounterOpts{
				Name: "wharf_cluster_fill_takeovers_total",
				Help: "Fills this replica took over from a replica that stopped renewing its lease (died or hung).",
			}),
			forwards: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "wharf_cluster_upload_forwards_total",
				Help: "Upload requests passed to the replica holding the session, by result: forwarded, replica_gone (it stopped: the client starts again), unreachable.",
			}, []string{"result"}),
			replicas: prometheus.NewGauge(prometheus.GaugeOpts{
				Name: "wharf_cluster_replicas",
				Help: "Replicas seen alive (a heartbeat within 30 s), this one included.",
			}),
		}
		for _, s := range FillSources {
			c.sources.WithLabelValues(s)
		}
		for _, r := range ForwardResults {
			c.forwards.WithLabelValues(r)
		}
		m.reg.MustRegister(c.sources, c.peer, c.takeovers, c.forwards, c.replicas)
		m.cluster.c = c
	})
	return m.cluster.c
}

// FillStream counts a fill stream opened from source (FillSources).
func (c *Cluster) FillStream(source string) {
	if c != nil {
		c.sources.WithLabelValues(source).Inc()
	}
}

// PeerBytes counts n bytes received from another replica.
func (c *Cluster) PeerBytes(n int) {
	if c != nil && n > 0 {
		c.peer.Add(float64(n))
	}
}

// Takeover counts a fill taken over from a replica that stopped renewing.
func (c *Cluster) Takeover() {
	if c != nil {
		c.takeovers.Inc()
	}
}

// UploadForward counts a forwarded upload request by result
// (ForwardResults).
func (c *Cluster) UploadForward(result string) {
	if c != nil {
		c.forwards.WithLabelValues(result).Inc()
	}
}

// Replicas sets how many replicas are alive.
func (c *Cluster) Replicas(n int) {
	if c != nil {
		c.replicas.Set(float64(n))
	}
}
