/* embed_c MODEL IMAGE: the same through the C API (trit.h), built with pkg-config. */
#include <stdio.h>
#include <trit.h>

int main(int argc, char** argv) {
  trit_model* model = NULL;
  trit_session* session = NULL;
  int32_t top = -1;
  float p = 0;
  if (argc != 3) {
    fprintf(stderr, "usage: embed_c MODEL IMAGE\n");
    return 2;
  }
  if (trit_model_load(argv[1], &model) != TRIT_OK || trit_session_create(model, &session) != TRIT_OK ||
      trit_classify_file(session, argv[2], 1, &top, &p) != TRIT_OK) {
    fprintf(stderr, "embed_c: %s\n", trit_last_error());
    trit_session_free(session);
    trit_model_free(model);
    return 1;
  }
  printf("%s\n", trit_model_label(model, top));
  trit_session_free(session);
  trit_model_free(model);
  return 0;
}
