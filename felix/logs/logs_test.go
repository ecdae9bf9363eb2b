package logs

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// Each output gets the entries at or above its own level: the screen at
// LogSeverityScreen, the file (LogFilePath) at LogSeverityFile, syslog at
// LogSeveritySys; "" turns an output off; levels change live.
func TestOutputsHaveTheirOwnLevels(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "log.sock")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	var screen bytes.Buffer
	logger := logrus.New()
	o := New(logger, &screen)
	defer o.Close()
	o.SyslogNetwork, o.SyslogAddr = "unixgram", sock
	file := filepath.Join(dir, "sub", "felix.log")
	if err := o.SetFile(file); err != nil {
		t.Fatal(err)
	}
	o.SetLevels("WARNING", "DEBUG", "INFO")
	log := logrus.NewEntry(logger)
	log.Debug("debug-line")
	log.Info("info-line")
	log.Warn("warn-line")

	sys := readSyslog(t, ln, 2)
	data, _ := os.ReadFile(file)
	for _, c := range []struct {
		out       string
		have, not []string
	}{
		{"screen", []string{"warn-line"}, []string{"info-line", "debug-line"}},
		{"file", []string{"debug-line", "info-line", "warn-line"}, nil},
		{"syslog", []string{"info-line", "warn-line"}, []string{"debug-line"}},
	} {
		text := map[string]string{"screen": screen.String(), "file": string(data), "syslog": sys}[c.out]
		for _, h := range c.have {
			if !strings.Contains(text, h) {
				t.Errorf("%s lacks %s:\n%s", c.out, h, text)
			}
		}
		for _, n := range c.not {
			if strings.Contains(text, n) {
				t.Errorf("%s has %s:\n%s", c.out, n, text)
			}
		}
	}
	if !strings.Contains(sys, "<12>") && !strings.Contains(sys, "<14>") {
		t.Errorf("syslog priorities missing: %q", sys)
	}
	if logger.GetLevel() != logrus.DebugLevel {
		t.Errorf("logger level %v, want the most verbose output's", logger.GetLevel())
	}

	// Live change: the file off, the screen at debug.
	o.SetLevels("DEBUG", "", "")
	log.Debug("second-debug")
	data, _ = os.ReadFile(file)
	if !strings.Contains(screen.String(), "second-debug") || strings.Contains(string(data), "second-debug") {
		t.Errorf("after the change: screen %q file %q", screen.String(), data)
	}
}

func readSyslog(t *testing.T, ln *net.UnixConn, n int) string {
	t.Helper()
	var b strings.Builder
	buf := make([]byte, 4096)
	for i := 0; i < n; i++ {
		_ = ln.SetReadDeadline(time.Now().Add(3 * time.Second))
		k, err := ln.Read(buf)
		if err != nil {
			break
		}
		b.Write(buf[:k])
		b.WriteByte('\n')
	}
	return b.String()
}

// A syslog that cannot be reached is reported once and the other outputs
// carry on.
func TestUnreachableSyslog(t *testing.T) {
	var screen bytes.Buffer
	logger := logrus.New()
	o := New(logger, &screen)
	o.SyslogNetwork, o.SyslogAddr = "unixgram", filepath.Join(t.TempDir(), "none.sock")
	o.SetLevels("INFO", "", "INFO")
	logrus.NewEntry(logger).Info("still-here")
	if !strings.Contains(screen.String(), "Cannot connect to syslog") || !strings.Contains(screen.String(), "still-here") {
		t.Errorf("screen:\n%s", screen.String())
	}
}
