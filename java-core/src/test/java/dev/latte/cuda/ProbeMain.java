package dev.latte.cuda;

/**
 * Run in a child JVM by {@link NativeLibrariesTest} with an environment of its choosing: prints,
 * one per line, {@link CudaContext#unavailableReason()}, what {@code CudaContext.open(0)} says and
 * what {@code NativeLibraries.cuda()} says ("ok" where they succeed).
 */
public final class ProbeMain {
    private ProbeMain() {
    }

    public static void main(String[] args) {
        System.out.println(CudaContext.unavailableReason());
        try (CudaContext ctx = CudaContext.open(0)) {
            System.out.println("ok " + ctx.deviceName());
        } catch (CudaUnavailableException e) {
            System.out.println(e.getMessage());
        }
        try {
            NativeLibraries.cuda();
            System.out.println("ok");
        } catch (CudaUnavailableException e) {
            System.out.println(e.getMessage());
        }
    }
}
