package container

import v1 "github.com/google/go-containerregistry/pkg/v1"

func hashOf(d string) (v1.Hash, error) { return v1.NewHash(d) }
