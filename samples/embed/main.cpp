// embed MODEL IMAGE: prints the image's top-1 label. The whole of embedding trit.
#include <cstdio>
#include <trit/error.h>
#include <trit/session.h>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: embed MODEL IMAGE\n");
    return 2;
  }
  try {
    trit::Session session(trit::Model::load(argv[1]));
    const trit::Prediction top = session.classify(trit::decode_image(argv[2]), 1).at(0);
    std::printf("%s\n", top.label.c_str());
    return 0;
  } catch (const trit::Error& e) {
    std::fprintf(stderr, "embed: %s\n", e.what());
    return 1;
  }
}
