// Command gw-init is PID 1 of the node OS image (/sbin/init; no systemd). It runs the boot
// script (/usr/lib/groundwork/boot.sh: mounts, network, containerd, cloud-config, kubelet) as a
// child, reaps every orphan forever, and shuts the machine down cleanly on the signals busybox's
// poweroff / reboot / halt send to PID 1 (SIGUSR2 / SIGTERM / SIGUSR1): SIGTERM to everything,
// up to 10 s, SIGKILL, sync, read-only remount of /, then the reboot system call.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

func logf(f string, a ...any) { fmt.Fprintf(os.Stdout, "groundwork-node: "+f+"\n", a...) }

func main() {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "gw-init must run as PID 1")
		os.Exit(1)
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGINT)
	boot := exec.Command("/bin/sh", "/usr/lib/groundwork/boot.sh")
	boot.Stdin, boot.Stdout, boot.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := boot.Start(); err != nil {
		logf("cannot start boot.sh: %v", err)
	}
	for s := range sigs {
		switch s {
		case syscall.SIGCHLD:
			reap()
		case syscall.SIGUSR2, syscall.SIGINT: // poweroff; ctrl-alt-del
			shutdown(syscall.LINUX_REBOOT_CMD_POWER_OFF, "power off")
		case syscall.SIGTERM:
			shutdown(syscall.LINUX_REBOOT_CMD_RESTART, "reboot")
		case syscall.SIGUSR1:
			shutdown(syscall.LINUX_REBOOT_CMD_HALT, "halt")
		}
	}
}

func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

func shutdown(cmd int, what string) {
	logf("%s: stopping all processes", what)
	syscall.Kill(-1, syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		reap()
		if syscall.Kill(-1, 0) == syscall.ESRCH {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	syscall.Kill(-1, syscall.SIGKILL)
	reap()
	syscall.Sync()
	if err := syscall.Mount("", "/", "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		logf("remount / read-only: %v", err)
	}
	syscall.Sync()
	logf("%s", what)
	syscall.Reboot(cmd)
}
