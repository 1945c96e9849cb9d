/* sinkllm.c - the command-line tool: dispatches to one subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char *USAGE =
    "usage: sinkllm COMMAND [options]\n"
    "\n"
    "StreamingLLM inference: endless generation at constant memory and speed.\n"
    "\n"
    "commands:\n"
    "  run      generate text from a prompt (streams to stdout)\n"
    "  chat     talk to the model: an endless conversation at constant memory\n"
    "  serve    OpenAI-compatible HTTP server (streaming, sessions, metrics)\n"
    "  bench    measure pre-fill and decode speed (llama-bench style table)\n"
    "  ppl      streaming perplexity of a text under a KV cache policy\n"
    "  plot     overlay the perplexity curves of several 'ppl --csv' runs\n"
    "  attn     draw attention maps (the attention-sink picture)\n"
    "  train    pre-train a small LLaMA model from scratch; export it as GGUF\n"
    "\n"
    "'sinkllm COMMAND --help' for a command's options; 'sinkllm --version'.\n";

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs(USAGE, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        fputs(USAGE, stdout);
        return 0;
    }
    sk_system_info si;
    sk_system_info_get(&si);
    if (si.isa_error) { /* SINKLLM_ISA asked for what this CPU cannot run */
        fprintf(stderr, "error: %s\n", si.isa_error);
        return 2;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("sinkllm %s (%s%s%s; best on this CPU: %s)\n", si.version, si.isa, *si.isa_note ? ": " : "",
               si.isa_note, si.isa_best);
        return 0;
    }
    static const struct { const char *name; int (*fn)(int, char **); } cmds[] = {
        {"run", cmd_run},
        {"bench", cmd_bench},
        {"ppl", cmd_ppl},
        {"plot", cmd_plot},
        {"attn", cmd_attn},
        {"chat", cmd_chat},
        {"serve", cmd_serve},
        {"train", cmd_train},
    };
    for (size_t c = 0; c < sizeof cmds / sizeof cmds[0]; c++) {
        if (strcmp(cmd, cmds[c].name) != 0) continue;
        for (int i = 2; i < argc; i++)
            if (!strcmp(argv[i], "--version")) {
                printf("sinkllm %s %s (%s%s%s)\n", cmd, si.version, si.isa, *si.isa_note ? ": " : "",
                       si.isa_note);
                return 0;
            }
        return cmds[c].fn(argc - 2, argv + 2);
    }
    fprintf(stderr, "error: unknown command '%s'\n\n%s", cmd, USAGE);
    return 2;
}
