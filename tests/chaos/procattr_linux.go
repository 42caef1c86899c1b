package chaos

import "syscall"

// procAttr makes a replica die with the test process, so that a test
// killed by its timeout leaves no replicas behind.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
