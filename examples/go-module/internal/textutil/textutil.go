// Package textutil normalises keys.
package textutil

import (
	"strings"
	"unicode"
)

// Normalize lower-cases s and collapses runs of white space to one underscore.
func Normalize(s string) string {
	var b strings.Builder
	space := false
	for _, r := range strings.TrimSpace(s) {
		if unicode.IsSpace(r) {
			space = true
			continue
		}
		if space {
			b.WriteByte('_')
			space = false
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}
