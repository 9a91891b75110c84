package exporter

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"gopkg.in/yaml.v3"
)

// promShardConfig is the relabelling the README shows for N exporters, as
// a Prometheus configuration carries it.
const promShardConfig = `
- source_labels: [pool]
  modulus: %d
  target_label: __tmp_shard
  action: hashmod
- source_labels: [__tmp_shard]
  regex: "%d"
  action: keep
`

// TestShardIsPrometheusHashmod: a pool belongs to the shard that
// Prometheus' hashmod relabelling, parsed from its YAML, keeps it in, which
// is the last 8 bytes of the MD5 of the name, big-endian, modulo the count;
// every pool belongs to exactly one of the shards.
func TestShardIsPrometheusHashmod(t *testing.T) {
	for _, count := range []uint64{1, 2, 3, 7} {
		for i := range 200 {
			name := fmt.Sprintf("pool-%03d", i+1)
			sum := md5.Sum([]byte(name))
			want := binary.BigEndian.Uint64(sum[8:]) % count
			owners := 0
			for index := range count {
				s := Shard{Index: index, Count: count}
				if err := s.Validate(); err != nil {
					t.Fatal(err)
				}
				var cfgs []*relabel.Config
				if err := yaml.Unmarshal(fmt.Appendf(nil, promShardConfig, count, index), &cfgs); err != nil {
					t.Fatal(err)
				}
				prom := relabel.ProcessBuilder(labels.NewBuilder(labels.FromStrings("pool", name)), cfgs...)
				if got := s.Owns(name); got != prom || got != (index == want) {
					t.Fatalf("%s in shard %s: Owns %v, Prometheus keeps %v, want %v", name, s, got, prom, index == want)
				}
				if s.Owns(name) {
					owners++
				}
			}
			if owners != 1 {
				t.Fatalf("%s is owned by %d of %d shards", name, owners, count)
			}
		}
	}
}

// TestShardValidate refuses an index outside the count.
func TestShardValidate(t *testing.T) {
	for _, tc := range []struct {
		s  Shard
		ok bool
	}{
		{Shard{}, true}, {Shard{Index: 0, Count: 1}, true}, {Shard{Index: 2, Count: 3}, true},
		{Shard{Index: 3, Count: 3}, false}, {Shard{Index: 1, Count: 1}, false}, {Shard{Index: 1}, false},
	} {
		if err := tc.s.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: err = %v, want ok %v", tc.s, err, tc.ok)
		}
	}
}
