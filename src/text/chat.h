/* chat.h - chat templates (chat.c): a conversation rendered to prompt
 * tokens or text, one hand-written format per template family.
 *
 * The whole chat-template API is public: it is declared in
 * include/sinkllm.h (section "chat templates"), which this header forwards
 * to for the library sources that name it. */
#ifndef SK_CHAT_H
#define SK_CHAT_H

#include "tokenizer.h"

#endif
