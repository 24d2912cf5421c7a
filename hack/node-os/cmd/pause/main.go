// Command pause is the pod sandbox's process: it holds the pod's namespaces, reaps orphaned
// children (it is PID 1 of the pod when the PID namespace is shared) and exits on SIGINT/SIGTERM.
// Built static into the node OS image's pause image (no registry is reachable in the lab).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s == syscall.SIGCHLD {
			for {
				pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}
