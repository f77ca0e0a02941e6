//go:build !unix

package registry

func mapFile(path string) ([]byte, func() error, error) { return readFile(path) }
