//! The `device` setting resolved against the devices libtorch sees. The syntax is
//! [`experiments::DeviceSpec`]'s, the one parser the planner uses too.

use experiments::DeviceSpec;
use tch::Device;

use crate::error::DeviceError;

/// `auto` (the first CUDA device, else the CPU), `cpu`, `cuda` or `cuda:N` (which must exist).
pub fn resolve_device(spec: &str) -> Result<Device, DeviceError> {
    match spec.parse::<DeviceSpec>()? {
        DeviceSpec::Auto => Ok(Device::cuda_if_available()),
        DeviceSpec::Cpu => Ok(Device::Cpu),
        DeviceSpec::Cuda(i) => {
            let count = tch::Cuda::device_count();
            if (i as i64) < count {
                Ok(Device::Cuda(i))
            } else {
                Err(DeviceError::Missing {
                    spec: DeviceSpec::Cuda(i),
                    count,
                })
            }
        }
    }
}

/// The name a device is reported by (`cpu`, `cuda:N`).
pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_and_refuses() {
        assert_eq!(resolve_device("cpu").unwrap(), Device::Cpu);
        let err = resolve_device("gpu").unwrap_err().to_string();
        assert!(err.contains("expected `auto`, `cpu`"), "{err}");
        let missing = format!("cuda:{}", tch::Cuda::device_count());
        let err = resolve_device(&missing).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
    }
}
