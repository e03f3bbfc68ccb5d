/* pause: the infra process of a pod sandbox.
 *
 * Holds the pod's namespaces open by doing nothing: it sleeps until SIGTERM or
 * SIGINT (exit 0 after the signal's name on stderr) and reaps any zombie
 * re-parented to it (it is PID 1 of the pod's PID namespace when the pod
 * shares one). Static, no libc features beyond signals and pause(2).
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig) { stop_signal = sig; }

static void on_child(int sig)
{
	int saved = errno;
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = saved;
}

static void say(const char *text) { (void)!write(2, text, strlen(text)); }

int main(int argc, char **argv)
{
	struct sigaction sa;

	if (argc > 1 && strcmp(argv[1], "-v") == 0) {
		say("pause (urunc) 1\n");
		return 0;
	}
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_stop;
	if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
		return 1;
	sa.sa_handler = on_child;
	sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
	if (sigaction(SIGCHLD, &sa, NULL) < 0)
		return 2;

	while (!stop_signal)
		pause();
	say(stop_signal == SIGTERM ? "pause: SIGTERM\n" : "pause: SIGINT\n");
	return 0;
}
