package wordcount

import (
	"context"
	"maps"
	"sync"
)

// memory keeps the counts in a map, for as long as the process runs.
type memory struct {
	mu sync.Mutex
	m  map[string]int64
}

func newMemory() *memory { return &memory{m: make(map[string]int64)} }

func (s *memory) Get(_ context.Context, key string) (int64, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	return v, ok, nil
}

func (s *memory) GetMany(_ context.Context, keys []string) (map[string]int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(keys))
	for _, k := range keys {
		if v, ok := s.m[k]; ok {
			out[k] = v
		}
	}
	return out, nil
}

func (s *memory) Put(_ context.Context, key string, v int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = v
	return nil
}

func (s *memory) PutMany(_ context.Context, rows map[string]int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	maps.Copy(s.m, rows)
	return nil
}

func (s *memory) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

func (s *memory) Flush(context.Context) error { return nil }
