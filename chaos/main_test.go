package chaos

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"testing"
)

// repoEnv makes the test binary the repository's server instead of a test run: it serves
// the directory named by the variable on the address in repoAddrEnv until it is killed. The
// harness kills it with SIGKILL and starts it again, as a web server crashes and comes back.
const (
	repoEnv     = "WALLPHONE_CHAOS_REPO_DIR"
	repoAddrEnv = "WALLPHONE_CHAOS_REPO_ADDR"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(repoEnv); dir != "" {
		l, err := net.Listen("tcp", os.Getenv(repoAddrEnv))
		if err != nil {
			fmt.Fprintln(os.Stderr, "repository server:", err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "repository server: serving", dir)
		err = http.Serve(l, http.FileServer(http.Dir(dir)))
		fmt.Fprintln(os.Stderr, "repository server:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
