package rotaserver

import (
	"os/exec"
	"syscall"
)

// dieWithParent has Linux kill the server when this process dies, even without running Stop
// (a test binary killed at its -timeout, say).
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
