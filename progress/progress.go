// Package progress is how long-running library operations report how far
// they are. The library never prints; the CLI renders a Reporter as a bar on
// a terminal, or as nothing (or JSON lines) otherwise.
package progress

// Reporter receives progress. Implementations MUST be safe for concurrent
// use: workers call Add from many goroutines.
type Reporter interface {
	// Phase announces a new phase ("commit", "checkout", "fsck") measured in
	// unit ("objects", "files", "bytes"); total is 0 when unknown.
	Phase(name, unit string, total int64)
	// Add reports n more units done in the current phase.
	Add(n int64)
	// Done ends the current phase.
	Done()
}

// Nop is a Reporter that ignores everything.
type Nop struct{}

func (Nop) Phase(string, string, int64) {}
func (Nop) Add(int64)                   {}
func (Nop) Done()                       {}

// OrNop returns r, or Nop when r is nil.
func OrNop(r Reporter) Reporter {
	if r == nil {
		return Nop{}
	}
	return r
}

// Warner receives best-effort failures that do not stop an operation (a
// stale temporary not removed, an ioctl the filesystem refused, resume
// turned off). The library never prints them; the CLI shows them with
// --verbose. Implementations MUST be safe for concurrent use.
type Warner interface {
	// Warn reports one condition; err names the path or object it concerns.
	Warn(err error)
}

// NopWarner drops every warning.
type NopWarner struct{}

// Warn implements Warner.
func (NopWarner) Warn(error) {}

// WarnerOrNop returns w, or NopWarner when w is nil.
func WarnerOrNop(w Warner) Warner {
	if w == nil {
		return NopWarner{}
	}
	return w
}

// WarnFunc adapts a function to Warner.
type WarnFunc func(error)

// Warn implements Warner.
func (f WarnFunc) Warn(err error) { f(err) }
