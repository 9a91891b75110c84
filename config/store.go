package config

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Store holds the running configuration and swaps it only when a reload
// succeeds, so a bad file leaves the running configuration in place.
type Store struct {
	path string

	mu  sync.RWMutex
	cfg *Config

	reloadSuccess   prometheus.Gauge
	reloadTimestamp prometheus.Gauge
}

// NewStore returns a store for the file at path and registers its reload
// metrics with reg when reg is not nil. Call Reload to load the file.
func NewStore(path string, reg prometheus.Registerer) *Store {
	s := &Store{
		path: path,
		reloadSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "xsha_config_last_reload_successful",
			Help: "Whether the last configuration reload attempt was successful.",
		}),
		reloadTimestamp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "xsha_config_last_reload_success_timestamp_seconds",
			Help: "Timestamp of the last successful configuration reload.",
		}),
	}
	if reg != nil {
		reg.MustRegister(s.reloadSuccess, s.reloadTimestamp)
	}
	return s
}

// Reload reads the file again and, if it is valid, makes it the running
// configuration.
func (s *Store) Reload() error {
	c, err := Load(s.path)
	if err != nil {
		s.reloadSuccess.Set(0)
		return err
	}
	s.mu.Lock()
	s.cfg = c
	s.mu.Unlock()
	s.reloadSuccess.Set(1)
	s.reloadTimestamp.Set(float64(time.Now().Unix()))
	return nil
}

// Get returns the running configuration; nil before the first successful
// Reload. The result must not be modified.
func (s *Store) Get() *Config {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cfg
}
