// Package kv is a tiny in-memory key-value store with a line-oriented text format.
package kv

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"example.com/kvstore/internal/textutil"
)

// Store is safe for concurrent use.
type Store struct {
	mu   sync.RWMutex
	data map[string]string
}

func New() *Store {
	return &Store{data: map[string]string{}}
}

func (s *Store) Put(key, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[textutil.Normalize(key)] = value
}

func (s *Store) Get(key string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.data[textutil.Normalize(key)]
	return v, ok
}

func (s *Store) Delete(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := textutil.Normalize(key)
	_, ok := s.data[k]
	delete(s.data, k)
	return ok
}

func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.data)
}

// Keys returns the keys in sorted order.
func (s *Store) Keys() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	keys := make([]string, 0, len(s.data))
	for k := range s.data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Load reads "key = value" lines; blank lines and lines starting with '#' are skipped.
func (s *Store) Load(r io.Reader) error {
	scanner := bufio.NewScanner(r)
	for line := 1; scanner.Scan(); line++ {
		text := strings.TrimSpace(scanner.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		key, value, ok := strings.Cut(text, "=")
		if !ok {
			return fmt.Errorf("line %d: expected key = value", line)
		}
		s.Put(strings.TrimSpace(key), strings.TrimSpace(value))
	}
	return scanner.Err()
}
