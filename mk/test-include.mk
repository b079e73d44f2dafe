include Makefile
include mk/libwharf.mk
