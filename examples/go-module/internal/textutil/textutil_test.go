package textutil

import "testing"

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"Key":           "key",
		"  two  words ": "two_words",
		"tab\tsep":      "tab_sep",
		"":              "",
	} {
		t.Run(want, func(t *testing.T) {
			if got := Normalize(in); got != want {
				t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
			}
		})
	}
}
