package lab

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// forwardRule lets traffic cross the lab bridge. Docker sets the FORWARD
// policy to DROP and bridge netfilter sends bridged frames through it, so
// without this rule hosts silently cannot reach each other.
var forwardRule = []string{"FORWARD", "-i", bridgeName, "-o", bridgeName, "-m", "comment", "--comment", ruleComment, "-j", "ACCEPT"}

// bridgeNetfilterOn says whether bridged traffic goes through iptables.
func bridgeNetfilterOn() bool {
	b, err := os.ReadFile("/proc/sys/net/bridge/bridge-nf-call-iptables")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// ensureForwardRule inserts the rule once. Without iptables and without
// bridge netfilter nothing filters the bridge and there is nothing to do.
func ensureForwardRule() error {
	if _, err := exec.LookPath("iptables"); err != nil {
		if bridgeNetfilterOn() {
			return fmt.Errorf("bridge netfilter is on but iptables is missing, so lab hosts cannot reach each other: install iptables (apt-get install iptables)")
		}
		return nil
	}
	if iptables(append([]string{"-C"}, forwardRule...)...) == nil {
		return nil
	}
	if err := iptables(append([]string{"-I"}, forwardRule...)...); err != nil {
		return fmt.Errorf("allow traffic across %s: %w", bridgeName, err)
	}
	return nil
}

// removeLabRules deletes every FORWARD rule carrying the lab's comment,
// including duplicates an interrupted run may have left.
func removeLabRules() error {
	if _, err := exec.LookPath("iptables"); err != nil {
		return nil
	}
	out, err := exec.Command("iptables", "-w", "-S", "FORWARD").Output()
	if err != nil {
		return fmt.Errorf("list FORWARD rules: %w", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.Contains(line, ruleComment) || !strings.HasPrefix(line, "-A ") {
			continue
		}
		spec := strings.Fields(strings.TrimPrefix(line, "-A "))
		for i := range spec {
			spec[i] = strings.Trim(spec[i], `"`)
		}
		if err := iptables(append([]string{"-D"}, spec...)...); err != nil {
			return fmt.Errorf("remove lab rule %q: %w", line, err)
		}
	}
	return nil
}

// hasLabRules says whether any lab rule is left.
func hasLabRules() bool {
	out, err := exec.Command("iptables", "-w", "-S", "FORWARD").Output()
	return err == nil && bytes.Contains(out, []byte(ruleComment))
}

// iptables runs one iptables command, waiting for the xtables lock.
func iptables(args ...string) error {
	cmd := exec.Command("iptables", append([]string{"-w"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("iptables %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
