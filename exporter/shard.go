package exporter

import (
	"fmt"
	"strconv"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"

	"xsha/config"
)

// Shard selects the pools one of several exporters sharing a fleet watches:
// those whose name Prometheus' hashmod relabelling (the MD5 of the pool
// name, modulo Count) assigns to Index. The zero Shard watches every pool.
type Shard struct {
	// Index is this exporter's shard, 0 ≤ Index < Count.
	Index uint64
	// Count is the number of shards; 0 and 1 mean one exporter for all.
	Count uint64
}

// shardLabel is the label the hashmod step writes and the keep step reads.
const shardLabel = "__tmp_shard"

// Validate says whether the shard is usable.
func (s Shard) Validate() error {
	if s.Count > 1 && s.Index >= s.Count {
		return fmt.Errorf("shard index %d is not below the shard count %d", s.Index, s.Count)
	}
	if s.Count <= 1 && s.Index != 0 {
		return fmt.Errorf("shard index %d without a shard count above 1", s.Index)
	}
	return nil
}

// relabelConfigs are the two steps of Prometheus' hashmod sharding, on the
// pool label: the same a scrape configuration would carry.
func (s Shard) relabelConfigs() []*relabel.Config {
	hash := relabel.DefaultRelabelConfig
	hash.SourceLabels = model.LabelNames{"pool"}
	hash.Modulus = s.Count
	hash.TargetLabel = shardLabel
	hash.Action = relabel.HashMod
	keep := relabel.DefaultRelabelConfig
	keep.SourceLabels = model.LabelNames{shardLabel}
	keep.Regex = relabel.MustNewRegexp(strconv.FormatUint(s.Index, 10))
	keep.Action = relabel.Keep
	return []*relabel.Config{&hash, &keep}
}

// Owns says whether the pool named name belongs to this shard.
func (s Shard) Owns(name string) bool {
	if s.Count <= 1 {
		return true
	}
	return relabel.ProcessBuilder(labels.NewBuilder(labels.FromStrings("pool", name)), s.relabelConfigs()...)
}

// filter returns cfg with only the pools this shard owns.
func (s Shard) filter(cfg *config.Config) *config.Config {
	if s.Count <= 1 {
		return cfg
	}
	out := *cfg
	out.Pools = nil
	for _, p := range cfg.Pools {
		if s.Owns(p.Name) {
			out.Pools = append(out.Pools, p)
		}
	}
	return &out
}

// String shows the shard as index/count.
func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, max(s.Count, 1)) }
