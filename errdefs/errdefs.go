// Package errdefs holds the sentinel errors shared by every layer. Errors
// are wrapped with the object, ref or path they concern (fmt.Errorf with
// %w) and tested with errors.Is; a package never turns a cause into a
// sentinel with %v, so the cause stays in the chain.
package errdefs

import (
	"context"
	"errors"
)

// The shared sentinels.
var (
	// ErrNotFound: the named thing (object, ref, remote, image, file) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: the named thing exists already and may not be replaced.
	ErrExists = errors.New("already exists")
	// ErrInvalid: an argument, flag, spec or name is malformed.
	ErrInvalid = errors.New("invalid argument")
	// ErrCorrupt: stored or received bytes fail their checksum or are
	// malformed. Only this sentinel may make fsck --delete remove an
	// object; an I/O or permission error MUST NOT be wrapped as it.
	ErrCorrupt = errors.New("corrupt object")
)

// IsNotFound, IsExists, IsInvalid and IsCorrupt are errors.Is shorthands.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsExists reports whether err wraps ErrExists.
func IsExists(err error) bool { return errors.Is(err, ErrExists) }

// IsInvalid reports whether err wraps ErrInvalid.
func IsInvalid(err error) bool { return errors.Is(err, ErrInvalid) }

// IsCorrupt reports whether err wraps ErrCorrupt.
func IsCorrupt(err error) bool { return errors.Is(err, ErrCorrupt) }

// WalkErr picks the error of a walk that feeds an errgroup: werr is the
// walker's, gerr the group's (g.Wait). A worker's failure cancels the
// group's context, so the walker then stops with context.Canceled; that is
// not the cause, and the worker's error (a corrupt object, a full disk) is
// returned instead. Only when ctx, the caller's context, was cancelled is
// the cancellation the cause.
func WalkErr(ctx context.Context, werr, gerr error) error {
	if werr == nil {
		return gerr
	}
	if gerr != nil && ctx.Err() == nil && errors.Is(werr, context.Canceled) {
		return gerr
	}
	return werr
}
