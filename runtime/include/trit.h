/* trit: the C API, for other languages and for C programs.
 *
 *   trit_model* model = NULL;
 *   if (trit_model_load("resnet50-ternary.trit", &model) != TRIT_OK) {
 *     fprintf(stderr, "%s\n", trit_last_error());
 *     return 1;
 *   }
 *   trit_session* session = NULL;
 *   trit_session_create(model, &session);
 *   int32_t classes[5]; float probs[5];
 *   trit_classify_file(session, "cat.jpg", 5, classes, probs);
 *   printf("%s\n", trit_model_label(model, classes[0]));
 *   trit_session_free(session);
 *   trit_model_free(model);
 *
 * Handles are opaque. A model is immutable and may be shared by any number of threads and
 * sessions; trit_model_free() may come before the sessions are freed (they keep what they
 * need alive). A session is for one thread at a time. Every function returns a status; on
 * failure, trit_last_error() gives a one-line message, valid until the calling thread's next
 * trit call. No function aborts on bad input; NULL handles and pointers are reported as
 * TRIT_INVALID_ARGUMENT. The C++ API (trit/session.h) is what this wraps.
 */
#ifndef TRIT_H
#define TRIT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum trit_status {
  TRIT_OK = 0,
  TRIT_INVALID_ARGUMENT = 1, /* a NULL handle or pointer, a size that does not fit */
  TRIT_ERROR = 2,            /* the model, the image or the run failed: see trit_last_error() */
  TRIT_OUT_OF_MEMORY = 3
} trit_status;

typedef struct trit_model trit_model;
typedef struct trit_session trit_session;

/* The last failure's message on this thread ("" when none). */
const char* trit_last_error(void);

trit_status trit_model_load(const char* path, trit_model** out);
/* The same with flags: TRIT_LOAD_PACKED_WEIGHTS keeps ternary and int4 weights packed in memory
 * (trit::Model::Options::packed_weights: the same results, about a quarter of the weights'
 * memory, runs a little slower). */
enum { TRIT_LOAD_PACKED_WEIGHTS = 1u };
trit_status trit_model_load_flags(const char* path, uint32_t flags, trit_model** out);
void trit_model_free(trit_model* model); /* NULL is fine */
/* The input's channels, height and width, and the number of classes; -1 for a NULL model. */
int32_t trit_model_input(const trit_model* model, int32_t* channels, int32_t* height, int32_t* width);
int32_t trit_model_classes(const trit_model* model);
/* A class's label ("" when the model has none, NULL for an index out of range). The string
 * lives as long as the model. */
const char* trit_model_label(const trit_model* model, int32_t index);

trit_status trit_session_create(const trit_model* model, trit_session** out);
void trit_session_free(trit_session* session); /* NULL is fine */

/* An 8-bit RGB image (rows top to bottom, 3 bytes a pixel) of any size: resized and cropped as
 * the model says, run, and its logits written to logits[0 .. classes). */
trit_status trit_logits_rgb(trit_session* session, const uint8_t* rgb, int32_t width, int32_t height, float* logits,
                            size_t capacity);
/* Decodes an image file (JPEG, PNG, BMP) and writes its top k classes, most probable first. */
trit_status trit_classify_file(trit_session* session, const char* path, int32_t k, int32_t* classes,
                               float* probabilities);

#ifdef __cplusplus
}
#endif

#endif /* TRIT_H */
