# wharf .rpm %post ($1: 1 install, 2 upgrade): data dir, unit enabled but
# not started on install. `systemctl enable` works without a running systemd.
if [ ! -d /var/lib/wharf ]; then
	install -d -o wharf -g wharf -m 0750 /var/lib/wharf
fi
if [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 1 ]; then
	systemctl enable wharf.service >/dev/null 2>&1 || :
	echo "wharf is installed and enabled but not started: edit /etc/wharf/wharf.yml, then run: systemctl start wharf"
fi
exit 0
