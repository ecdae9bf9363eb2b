// Package logs sends felix's log to up to three outputs, each with its own
// level, as Calico's felix does: the screen (stderr, LogSeverityScreen),
// a file (LogFilePath, LogSeverityFile) and the local syslog
// (LogSeveritySys). The logger's own level is the most verbose of the
// three, so nothing is formatted that no output wants.
package logs

import (
	"errors"
	"fmt"
	"io"
	"log/syslog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
)

// Outputs is a logrus hook writing each entry to the outputs whose level
// admits it. Its methods are safe for concurrent use.
type Outputs struct {
	logger *logrus.Logger
	screen io.Writer

	// SyslogNetwork and SyslogAddr name the syslog to dial ("" and "":
	// the local syslog); set before the first SetLevels. For tests.
	SyslogNetwork, SyslogAddr string

	mu       sync.Mutex
	file     io.WriteCloser
	filePath string
	sys      *syslog.Writer
	sysTried bool
	// levels of screen, file and syslog; off when not set.
	screenLvl, fileLvl, sysLvl level

	errors  prometheus.Counter
	dropped prometheus.Counter
}

type level struct {
	on  bool
	lvl logrus.Level
}

var _ logrus.Hook = (*Outputs)(nil)

// New takes over logger's output: entries go to screen (at Info until
// SetLevels says otherwise) and to whatever SetFile and SetLevels add.
func New(logger *logrus.Logger, screen io.Writer) *Outputs {
	o := &Outputs{
		logger:    logger,
		screen:    screen,
		screenLvl: level{on: true, lvl: logrus.InfoLevel},
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_log_errors",
			Help: "Number of errors encountered while logging."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_logs_dropped",
			Help: "Number of logs dropped because the output stream was blocked."}),
	}
	logger.SetOutput(io.Discard)
	logger.AddHook(o)
	o.apply()
	return o
}

// Collectors returns felix_log_errors and felix_logs_dropped (felix blocks
// rather than dropping, so the latter stays 0).
func (o *Outputs) Collectors() []prometheus.Collector {
	return []prometheus.Collector{o.errors, o.dropped}
}

// SetFile opens path (creating its directory) for the file output; ""
// or "none" means no file. The file is opened once: LogFilePath needs a
// restart to change.
func (o *Outputs) SetFile(path string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if path == o.filePath {
		return nil
	}
	if o.file != nil {
		_ = o.file.Close()
		o.file, o.filePath = nil, ""
	}
	if path == "" || strings.EqualFold(path, "none") {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating the log file's directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("opening the log file: %w", err)
	}
	o.file, o.filePath = f, path
	return nil
}

// SetLevels sets the screen, file and syslog levels (Calico's names:
// TRACE, DEBUG, INFO, WARNING, ERROR, FATAL; "" turns the output off).
// The syslog is dialled the first time it is wanted; if that fails it is
// reported once and left off.
func (o *Outputs) SetLevels(screen, file, sys string) {
	o.mu.Lock()
	o.screenLvl, o.fileLvl, o.sysLvl = parse(screen), parse(file), parse(sys)
	var dialErr error
	if o.sysLvl.on && o.sys == nil && !o.sysTried {
		o.sysTried = true
		o.sys, dialErr = syslog.Dial(o.SyslogNetwork, o.SyslogAddr, syslog.LOG_INFO|syslog.LOG_USER, "calico-felix")
	}
	o.mu.Unlock()
	o.apply()
	if dialErr != nil {
		o.logger.WithError(dialErr).Error("Cannot connect to syslog; set LogSeveritySys to none or run a local syslog")
	}
}

// Close closes the file and the syslog connection.
func (o *Outputs) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	var errs []error
	if o.file != nil {
		errs = append(errs, o.file.Close())
		o.file = nil
	}
	if o.sys != nil {
		errs = append(errs, o.sys.Close())
		o.sys = nil
	}
	return errors.Join(errs...)
}

func parse(s string) level {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "", "NONE":
		return level{}
	case "WARNING", "WARN":
		return level{on: true, lvl: logrus.WarnLevel}
	}
	l, err := logrus.ParseLevel(s)
	if err != nil {
		return level{}
	}
	return level{on: true, lvl: l}
}

// apply sets the logger's level to the most verbose open output's.
func (o *Outputs) apply() {
	o.mu.Lock()
	outs := []level{o.screenLvl}
	if o.file != nil {
		outs = append(outs, o.fileLvl)
	}
	if o.sys != nil {
		outs = append(outs, o.sysLvl)
	}
	most := logrus.PanicLevel
	for _, l := range outs {
		if l.on && l.lvl > most {
			most = l.lvl
		}
	}
	o.mu.Unlock()
	o.logger.SetLevel(most)
}

// Levels implements logrus.Hook.
func (o *Outputs) Levels() []logrus.Level { return logrus.AllLevels }

// Fire implements logrus.Hook: it formats the entry once and writes it to
// every output whose level admits it.
func (o *Outputs) Fire(e *logrus.Entry) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	admits := func(l level) bool { return l.on && e.Level <= l.lvl }
	toScreen, toFile := admits(o.screenLvl), admits(o.fileLvl) && o.file != nil
	toSys := admits(o.sysLvl) && o.sys != nil
	if !toScreen && !toFile && !toSys {
		return nil
	}
	line, err := o.logger.Formatter.Format(e)
	if err != nil {
		o.errors.Inc()
		return nil
	}
	if toScreen {
		o.write(func() error { _, err := o.screen.Write(line); return err })
	}
	if toFile {
		o.write(func() error { _, err := o.file.Write(line); return err })
	}
	if toSys {
		msg := strings.TrimRight(string(line), "\n")
		o.write(func() error { return toSyslog(o.sys, e.Level, msg) })
	}
	return nil
}

func (o *Outputs) write(f func() error) {
	if f() != nil {
		o.errors.Inc()
	}
}

func toSyslog(w *syslog.Writer, l logrus.Level, msg string) error {
	switch l {
	case logrus.PanicLevel, logrus.FatalLevel:
		return w.Crit(msg)
	case logrus.ErrorLevel:
		return w.Err(msg)
	case logrus.WarnLevel:
		return w.Warning(msg)
	case logrus.InfoLevel:
		return w.Info(msg)
	}
	return w.Debug(msg)
}
