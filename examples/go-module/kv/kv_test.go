package kv

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

func TestMainRan(t *testing.T) {
	if !setUp {
		t.Fatal("TestMain did not run")
	}
}

func TestPutGetDelete(t *testing.T) {
	s := New()
	s.Put("Colour", "blue")
	if v, ok := s.Get("colour"); !ok || v != "blue" {
		t.Fatalf("Get(colour) = %q, %v", v, ok)
	}
	if !s.Delete("COLOUR") {
		t.Fatal("Delete reported a missing key")
	}
	if s.Len() != 0 {
		t.Fatalf("Len = %d after delete", s.Len())
	}
}

func TestLoad(t *testing.T) {
	cases := []struct {
		name, input string
		keys        []string
		err         string
	}{
		{"empty", "", nil, ""},
		{"comments", "# c\n\na = 1\n", []string{"a"}, ""},
		{"spaces", "  b   =  two words  \n", []string{"b"}, ""},
		{"bad line", "a = 1\nnope\n", nil, "line 2: expected key = value"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := New()
			err := s.Load(strings.NewReader(tc.input))
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(s.Keys(), ","); got != strings.Join(tc.keys, ",") {
				t.Fatalf("keys = %q, want %q", got, tc.keys)
			}
		})
	}
}

func TestConcurrentPuts(t *testing.T) {
	t.Parallel()
	s := New()
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s.Put(fmt.Sprintf("k%02d", i), "v")
		}(i)
	}
	wg.Wait()
	if s.Len() != 50 {
		t.Fatalf("Len = %d", s.Len())
	}
}

// Reads testdata/ relative to the package directory, which is the working directory under go
// test and under maelstrom-go-test alike.
func TestLoadSeedFile(t *testing.T) {
	f, err := os.Open("testdata/seed.kv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := New()
	if err := s.Load(f); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Get("greeting"); v != "hello, world" {
		t.Fatalf("greeting = %q", v)
	}
	if s.Len() != 3 {
		t.Fatalf("Len = %d", s.Len())
	}
}

func TestNeedsNetwork(t *testing.T) {
	if os.Getenv("KV_NETWORK_TESTS") == "" {
		t.Skip("set KV_NETWORK_TESTS=1 to run")
	}
	t.Fatal("there is no network test yet")
}

func ExampleStore_Keys() {
	s := New()
	s.Put("b", "2")
	s.Put("A", "1")
	fmt.Println(s.Keys())
	// Output: [a b]
}
